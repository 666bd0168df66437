"""SDXL (and Playground-style SDXL models): a UNet on two CLIP encoders, with pooled
embeddings and size conditioning; A1111 weights on both encoders."""

from __future__ import annotations

from huajia.engine.families.base import Family
from huajia.engine.families.sd import clip_prompt_kwargs


class StableDiffusionXL(Family):
    name = "sdxl"
    label = "SDXL"
    pipelines = ("StableDiffusionXLPipeline",)
    img2img, inpaint = "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline"
    lora_text_encoders = ("text_encoder", "text_encoder_2")
    lora_formats = ("diffsynth",)  # DiffSynth-Studio's SDXL UNet trainer
    weighted = True
    guidance_rescale = True
    cfg_cutoff = True
    cpu_split = True

    def prompt_kwargs(self, pipe, prompt: str, negative: str, dtype=None) -> dict:
        return clip_prompt_kwargs(pipe, prompt, negative, dtype)
