"""HiDream-I1: a sparse (mixture-of-experts) DiT on four encoders: CLIP-L and CLIP-G (pooled,
projected: the pooled vector), T5 (states) and Llama 3.1 (every layer's states; the
transformer picks llama_layers); FLUX's VAE; latents patched 2x2; real CFG."""

from __future__ import annotations

import torch

from .parts import clip_text_encoder, flux_vae, perturb_norm, t5_encoder
from .tokenizing import clip_tokenizer, llama3_tokenizer, t5_tokenizer


def _llama(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=37,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=256, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    encoder = LlamaForCausalLM(config).eval()
    perturb_norm(encoder.model.norm, seed=4)  # hidden_states[1:]: the last one is normed
    return encoder


def build():
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        HiDreamImagePipeline,
        HiDreamImageTransformer2DModel,
    )

    torch.manual_seed(0)
    clip, t5, llama = clip_tokenizer(128), t5_tokenizer(128), llama3_tokenizer(128)
    text_encoder = clip_text_encoder(clip, 32, projection=True, seed=1, max_positions=128)
    text_encoder_2 = clip_text_encoder(clip, 32, projection=True, seed=2, max_positions=128)
    text_encoder_3 = t5_encoder(t5, 32, seed=3)
    text_encoder_4 = _llama(llama)
    transformer = HiDreamImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=16, num_layers=1, num_single_layers=1,
        attention_head_dim=8, num_attention_heads=4, caption_channels=[32, 16], text_emb_dim=64,
        num_routed_experts=4, num_activated_experts=2, axes_dims_rope=(4, 2, 2),
        max_resolution=(128, 128), llama_layers=(0, 1)).eval()
    # HiDream-ai/HiDream-I1-Dev's kind: flow matching with a fixed shift (Full uses UniPC).
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=6.0)
    return HiDreamImagePipeline(
        scheduler=scheduler, vae=flux_vae(), text_encoder=text_encoder, tokenizer=clip,
        text_encoder_2=text_encoder_2, tokenizer_2=clip, text_encoder_3=text_encoder_3,
        tokenizer_3=t5, text_encoder_4=text_encoder_4, tokenizer_4=llama, transformer=transformer)
