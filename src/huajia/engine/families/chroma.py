"""Chroma: a FLUX.1-schnell-derived transformer on T5 alone, de-distilled, so guidance is
classifier-free guidance with a negative prompt; packed latents as in Flux."""

from __future__ import annotations

import torch

from huajia.engine.families.base import Family
from huajia.engine.t5_weights import encode_t5, even, own_encoding


class Chroma(Family):
    name = "chroma"
    label = "Chroma"
    pipelines = ("ChromaPipeline",)
    # ChromaInpaintPipeline reads transformer.config.guidance_embeds, which Chroma's
    # transformer has not (diffusers 0.42): masked edits take huajia's own partial denoise
    img2img = "ChromaImg2ImgPipeline"
    sigma_spacing = True
    lora_targets = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj",
                    "to_add_out")  # the image and the text stream's attention
    lora_text_encoders = ("text_encoder",)  # its T5
    denoiser_name = "transformer"
    flow = True
    packed = True
    weighted = True
    window = 512

    def training_time(self, pipe, timesteps):
        """The pipeline passes the transformer σ (its timestep / 1000)."""
        return timesteps / 1000

    def prompt_kwargs(self, pipe, prompt: str, negative: str, dtype=None) -> dict:
        """Weights on T5 (engine/t5_weights), with Chroma's mask: the transformer sees each
        chunk's tokens and its first padding token."""
        if not own_encoding(pipe.tokenizer, self.window - 1, prompt, negative):
            return super().prompt_kwargs(pipe, prompt, negative, dtype)
        dtype = dtype or pipe.dtype
        encoded = even(*(encode_t5(pipe.tokenizer, pipe.text_encoder, text, self.window,
                                   masked=True) for text in (prompt, negative)))
        kwargs = {}
        for key, t5 in zip(("", "negative_"), encoded, strict=True):
            kwargs[f"{key}prompt_embeds"] = t5.embeds.to(dtype)
            kwargs[f"{key}prompt_attention_mask"] = _one_pad_more(t5.mask).to(dtype or t5.embeds.dtype)
        return kwargs


def _one_pad_more(mask: torch.Tensor) -> torch.Tensor:
    """Each chunk's mask with its first padding position let through (as Chroma's pipeline)."""
    shifted = torch.nn.functional.pad(mask[:, :-1], (1, 0))
    return (mask.bool() | (shifted.bool() & ~mask.bool())).to(mask.dtype)
