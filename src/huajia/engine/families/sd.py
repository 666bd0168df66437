"""Stable Diffusion 1.x/2.x (and huajia's embedded model): a UNet on CLIP-L (or OpenCLIP-H)
embeddings, noise or v prediction; A1111 weights and BREAK on the embeddings."""

from __future__ import annotations

from huajia.engine.families.base import Family


def clip_prompt_kwargs(pipe, prompt: str, negative: str, dtype) -> dict:
    """A1111-weighted CLIP embeddings (engine/embeddings) as the pipeline's keywords."""
    from huajia.engine.embeddings import encode_weighted

    positive, negative_enc = encode_weighted(pipe, prompt, negative)
    kwargs = {"prompt_embeds": positive.prompt_embeds.to(dtype),
              "negative_prompt_embeds": negative_enc.prompt_embeds.to(dtype)}
    if positive.pooled is not None:
        kwargs["pooled_prompt_embeds"] = positive.pooled.to(dtype)
        kwargs["negative_pooled_prompt_embeds"] = negative_enc.pooled.to(dtype)
    return kwargs


class StableDiffusion(Family):
    name = "sd"
    label = "Stable Diffusion 1.x/2.x"
    pipelines = ("StableDiffusionPipeline",)
    img2img, inpaint = "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline"
    inpaint_channels = (4, 9)  # 4-channel latents (9: an inpainting UNet)
    lora_text_encoders = ("text_encoder",)
    weighted = True
    guidance_rescale = True
    cfg_cutoff = True
    cpu_split = True
    regions = "batch"  # thinking's regional prompts: batched denoiser calls

    def prompt_kwargs(self, pipe, prompt: str, negative: str, dtype=None) -> dict:
        return clip_prompt_kwargs(pipe, prompt, negative, dtype)
