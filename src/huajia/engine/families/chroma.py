"""Chroma: a FLUX.1-schnell-derived transformer on T5 alone, de-distilled, so guidance is
classifier-free guidance with a negative prompt; packed latents as in Flux."""

from __future__ import annotations

import torch

from huajia.engine.families.base import Family, join_masks
from huajia.engine.t5_weights import encode_t5, even, own_encoding, trimmed


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

    regions = "joint"  # thinking's regional prompts: a mask over [text, image] attention

    def caption_embeds(self, pipe, caption: str):
        """A caption's T5 tokens (its words and EOS, padding cut off) for regional attention."""
        return trimmed(encode_t5(pipe.tokenizer, pipe.text_encoder, caption, self.window,
                                 masked=True), self.window), None

    def joint_text(self, kwargs: dict, extra) -> dict:
        """The transformer's keywords with ``extra`` text tokens after the prompt's: their
        positions are the text's (zeros, as Flux's), and the pipeline's mask over the joint
        [text, image] sequence lets them through."""
        text_tokens = kwargs["encoder_hidden_states"].shape[1]
        kwargs = super().joint_text(kwargs, extra)
        ids = kwargs["txt_ids"]
        ids = ids[0] if ids.ndim == 3 else ids  # the deprecated batched form
        kwargs["txt_ids"] = torch.cat([ids, ids.new_zeros(extra.shape[1], ids.shape[-1])])
        mask = kwargs.get("attention_mask")
        if mask is not None:  # (B, text + image): ones for the new tokens after the text
            ones = mask.new_ones(mask.shape[0], extra.shape[1])
            kwargs["attention_mask"] = torch.cat([mask[:, :text_tokens], ones,
                                                  mask[:, text_tokens:]], 1)
        return kwargs

    def joint_mask(self, kwargs: dict, mask) -> dict:
        """Chroma's blocks pass the padding mask as ``attention_mask``: the regions' mask goes
        apart, as ``region_mask``, for ``mask_processors``."""
        kwargs = dict(kwargs)
        kwargs["joint_attention_kwargs"] = {**(kwargs.get("joint_attention_kwargs") or {}),
                                            "region_mask": mask}
        return kwargs

    def mask_processors(self, denoiser) -> dict:
        """Flux's attention processors with the region mask joined to the padding mask."""
        return {name: RegionMaskedFlux(processor)
                for name, processor in denoiser.attn_processors.items()}

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


class RegionMaskedFlux:
    """A Flux attention processor (Chroma's blocks) that also applies thinking's region mask,
    given as ``region_mask`` (B or 1, 1, S, S) over the joint [text, image] sequence."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 image_rotary_emb=None, region_mask=None):
        if region_mask is not None:
            attention_mask = join_masks(attention_mask, region_mask)
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask,
                          image_rotary_emb)
