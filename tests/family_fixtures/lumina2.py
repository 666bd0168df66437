"""Lumina-Image 2.0: a unified single-stream DiT (caption and image refiners, then joint
blocks) on Gemma-2's penultimate hidden states of "<system prompt> <Prompt Start> <prompt>";
FLUX's VAE (the pipeline fixes vae_scale_factor at 8). Time runs the other way (t = 1 - s) and
the transformer predicts the reversed velocity (the pipeline negates it); CFG has a
renormalisation and a truncation ratio."""

from __future__ import annotations

import torch

from .parts import flux_vae
from .sana import gemma2
from .tokenizing import gemma_tokenizer


def build():
    from diffusers import FlowMatchEulerDiscreteScheduler, Lumina2Pipeline, Lumina2Transformer2DModel

    torch.manual_seed(0)
    tokenizer = gemma_tokenizer()
    text_encoder = gemma2(tokenizer, width=16, layers=3)  # read at hidden_states[-2]: no norm
    transformer = Lumina2Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=16, hidden_size=32, num_layers=2,
        num_refiner_layers=1, num_attention_heads=2, num_kv_heads=1, multiple_of=16,
        norm_eps=1e-5, scaling_factor=1.0, axes_dim_rope=(4, 6, 6), axes_lens=(512, 64, 64),
        cap_feat_dim=16)
    # Alpha-VLLM/Lumina-Image-2.0's scheduler: flow matching with a fixed shift of 6.
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=6.0)
    return Lumina2Pipeline(transformer=transformer, scheduler=scheduler, vae=flux_vae(),
                           text_encoder=text_encoder, tokenizer=tokenizer)
