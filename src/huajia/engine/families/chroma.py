"""Chroma: a FLUX.1-schnell-derived transformer on T5 alone, de-distilled, so guidance is
classifier-free guidance with a negative prompt; packed latents as in Flux."""

from __future__ import annotations

from huajia.engine.families.base import Family


class Chroma(Family):
    name = "chroma"
    label = "Chroma"
    pipelines = ("ChromaPipeline",)
    denoiser_name = "transformer"
    flow = True
    packed = True
