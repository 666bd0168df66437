"""SDXL (and Playground-style SDXL models): a UNet on two CLIP encoders, with pooled
embeddings and size conditioning; A1111 weights on both encoders."""

from __future__ import annotations

from huajia.engine.families.base import Family


class StableDiffusionXL(Family):
    name = "sdxl"
    label = "SDXL"
    pipelines = ("StableDiffusionXLPipeline",)
    weighted = True
    guidance_rescale = True
    cfg_cutoff = True
    cpu_split = True
