"""Stable Diffusion 1.x/2.x (and huajia's embedded model): a UNet on CLIP-L (or OpenCLIP-H)
embeddings, noise or v prediction; A1111 weights and BREAK on the embeddings."""

from __future__ import annotations

from huajia.engine.families.base import Family


class StableDiffusion(Family):
    name = "sd"
    label = "Stable Diffusion 1.x/2.x"
    pipelines = ("StableDiffusionPipeline",)
    weighted = True
    guidance_rescale = True
    cfg_cutoff = True
    cpu_split = True
