"""The shapes world: vocabulary, scene specs, renderer, en/zh captions, parser, verifier.

A procedural world where a program knows the truth about every picture, so huajia can train its
own models and judge any model's pictures exactly.
"""
