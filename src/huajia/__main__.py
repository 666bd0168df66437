from huajia.cli import main

main()
