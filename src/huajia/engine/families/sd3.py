"""Stable Diffusion 3/3.5: an MMDiT on CLIP-L, CLIP-G and T5, flow matching with a fixed
shift; classifier-free guidance as in SD."""

from __future__ import annotations

from huajia.engine.families.base import Family


class StableDiffusion3(Family):
    name = "sd3"
    label = "Stable Diffusion 3"
    pipelines = ("StableDiffusion3Pipeline",)
    denoiser_name = "transformer"
    flow = True
    patch = 2
