"""PixArt-Σ: a DiT on T5 (300 tokens) with learned variance, noise prediction. Its pipeline
has no step-end callback (only the legacy per-step one), bins sizes (off: the asked size is
painted) and by default cleans captions in a way that deletes Chinese (off)."""

from __future__ import annotations

from huajia.engine.families.base import Family


class PixArtSigma(Family):
    name = "pixart_sigma"
    label = "PixArt-Σ"
    pipelines = ("PixArtSigmaPipeline", "PixArtAlphaPipeline")
    denoiser_name = "transformer"
    step_callback = False
    defaults = {"use_resolution_binning": False, "clean_caption": False}
