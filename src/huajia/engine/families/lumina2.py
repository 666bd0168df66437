"""Lumina Image 2.0: a unified next-DiT on Gemma 2 with a system prompt, flow matching with
CFG normalisation (the pipeline's default, kept)."""

from __future__ import annotations

from huajia.engine.families.base import Family


class Lumina2(Family):
    name = "lumina2"
    label = "Lumina 2"
    pipelines = ("Lumina2Pipeline",)
    sigma_spacing = True  # no image-to-image pipeline: huajia's own partial denoise
    denoiser_name = "transformer"
    flow = True
    patch = 2
