"""SDXL (and Playground-style SDXL models): a UNet on two CLIP encoders, with pooled
embeddings and size conditioning; A1111 weights on both encoders."""

from __future__ import annotations

from huajia.engine.families.sd import StableDiffusion


class StableDiffusionXL(StableDiffusion):
    """What SD does (A1111 weights on CLIP, CFG rescale and cutoff, the CPU split), on two
    encoders."""

    name = "sdxl"
    label = "SDXL"
    pipelines = ("StableDiffusionXLPipeline",)
    img2img, inpaint = "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline"
    lora_text_encoders = ("text_encoder", "text_encoder_2")
    lora_formats = ("diffsynth",)  # DiffSynth-Studio's SDXL UNet trainer
