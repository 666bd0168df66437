"""``huajia batch``: many requests from a JSON-lines file into an HF imagefolder, locally or on
Ray Data, resumable."""
