"""PixArt-Σ: a DiT with cross-attention to T5's states (300 tokens, with its mask) and
adaLN-single timestep modulation; SDXL's VAE; an epsilon model with learned variance (the
transformer gives 8 channels for 4 latent ones and the pipeline keeps the first 4), sampled
by DPM-Solver++ on DiT's linear beta schedule."""

from __future__ import annotations

import torch

from .parts import sdxl_vae, t5_encoder
from .tokenizing import t5_tokenizer


def build():
    from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    torch.manual_seed(0)
    tokenizer = t5_tokenizer(300)
    text_encoder = t5_encoder(tokenizer, 32, seed=1)
    transformer = PixArtTransformer2DModel(
        sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8, num_attention_heads=2,
        caption_channels=32, in_channels=4, out_channels=8, cross_attention_dim=16,
        attention_bias=True, activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
        norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
        interpolation_scale=1).eval()
    # The conversion script's DPMSolverMultistepScheduler(): linear betas 1e-4..0.02, epsilon.
    scheduler = DPMSolverMultistepScheduler()
    return PixArtSigmaPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=sdxl_vae(),
                               transformer=transformer, scheduler=scheduler)
