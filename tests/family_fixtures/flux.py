"""FLUX.1: an MMDiT (double + single stream blocks) on CLIP-L (pooled vector only) and T5;
latents are packed 2x2 into tokens. [dev] is guidance-distilled: the guidance scale is an
input of the transformer (guidance_embeds), not a second pass; [schnell] has no guidance
input and a fixed-shift schedule."""

from __future__ import annotations

import torch

from .parts import clip_text_encoder, flux_vae, t5_encoder
from .tokenizing import clip_tokenizer, t5_tokenizer


def transformer(guidance_embeds: bool):
    from diffusers import FluxTransformer2DModel

    # in_channels = 16 latent channels x 2 x 2 packing; rope axes sum to the head width (16).
    return FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=guidance_embeds, axes_dims_rope=(4, 6, 6))


def build(schnell: bool = False):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    torch.manual_seed(0)
    tokenizer, tokenizer_2 = clip_tokenizer(), t5_tokenizer(256 if schnell else 512)
    text_encoder = clip_text_encoder(tokenizer, 32, projection=False, seed=1)
    text_encoder_2 = t5_encoder(tokenizer_2, 32, seed=2)
    if schnell:  # black-forest-labs/FLUX.1-schnell: shift 1, no resolution-dependent shift
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    else:  # FLUX.1-dev: mu from the image's token count (0.5 at 256 tokens, 1.15 at 4096)
        scheduler = FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
            max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    return FluxPipeline(
        scheduler=scheduler, vae=flux_vae(), text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
        transformer=transformer(guidance_embeds=not schnell))


def build_schnell():
    return build(schnell=True)
