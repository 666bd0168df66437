"""Stable Diffusion 3: an MMDiT on three encoders (CLIP-L and CLIP-G, each with projection,
and T5); a 16-channel VAE with a shift; flow matching."""

from __future__ import annotations

import torch

from .parts import clip_text_encoder, sd3_vae, t5_encoder
from .tokenizing import clip_tokenizer, t5_tokenizer


def build():
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    torch.manual_seed(0)
    tokenizer, tokenizer_3 = clip_tokenizer(), t5_tokenizer(256)
    # The context is [CLIP-L ‖ CLIP-G] (penultimate layers, 32 + 32 wide) padded to T5's 64,
    # then T5's tokens after it; the pooled vector is CLIP-L's + CLIP-G's projections (64).
    text_encoder = clip_text_encoder(tokenizer, 32, projection=True, seed=1)
    text_encoder_2 = clip_text_encoder(tokenizer, 32, projection=True, seed=2)
    text_encoder_3 = t5_encoder(tokenizer_3, 64, seed=3)
    transformer = SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=16, out_channels=16, num_layers=2,
        attention_head_dim=8, num_attention_heads=4, joint_attention_dim=64,
        caption_projection_dim=32, pooled_projection_dim=64, pos_embed_max_size=16)
    # stabilityai/stable-diffusion-3-medium-diffusers' scheduler: shift 3.0, no dynamic shift.
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=scheduler, vae=sd3_vae(), text_encoder=text_encoder,
        tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer,
        text_encoder_3=text_encoder_3, tokenizer_3=tokenizer_3)
