"""Measuring models: ShapesEval (GenEval-style, judged by the world's verifier) and reports."""
