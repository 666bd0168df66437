"""Kolors: an SDXL-style UNet on ChatGLM3 (256 tokens) with a pooled vector and size
conditioning. Its pipeline has no CFG rescale."""

from __future__ import annotations

from huajia.engine.families.base import Family


class Kolors(Family):
    name = "kolors"
    label = "Kolors"
    pipelines = ("KolorsPipeline",)
