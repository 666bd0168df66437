"""Chroma: FLUX.1-schnell's layout without CLIP and without per-block modulation layers (one
"distilled guidance" approximator makes them); T5 only, with its attention mask kept in the
transformer (all but the first padding token are masked); real CFG with a negative prompt."""

from __future__ import annotations

import torch

from .parts import flux_vae, t5_encoder
from .tokenizing import t5_tokenizer


def build():
    from diffusers import ChromaPipeline, ChromaTransformer2DModel, FlowMatchEulerDiscreteScheduler

    torch.manual_seed(0)
    tokenizer = t5_tokenizer(512)
    text_encoder = t5_encoder(tokenizer, 32, seed=1)
    transformer = ChromaTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, axes_dims_rope=(4, 6, 6),
        approximator_num_channels=16, approximator_hidden_dim=32, approximator_layers=1)
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
        max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    return ChromaPipeline(scheduler=scheduler, vae=flux_vae(), text_encoder=text_encoder,
                          tokenizer=tokenizer, transformer=transformer)
