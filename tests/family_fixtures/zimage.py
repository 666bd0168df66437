"""Z-Image: a single-stream DiT on Qwen3's penultimate hidden states of the chat-templated
prompt (only the real tokens, a list of variable-length tensors); FLUX's VAE. The transformer
predicts the reversed velocity at time (1000 - t) / 1000 (the pipeline negates it); CFG is
pos + g * (pos - neg), so guidance 0 is no CFG (Turbo's setting)."""

from __future__ import annotations

import torch

from .parts import flux_vae, perturb_norm
from .tokenizing import qwen2_tokenizer


def _text_encoder(tokenizer):
    from transformers import Qwen3Config, Qwen3Model

    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37,
                         num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=1,
                         head_dim=16, max_position_embeddings=1024,
                         pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"))
    encoder = Qwen3Model(config).eval()
    # The pipeline reads hidden_states[-2] (the residual stream after the next-to-last layer,
    # before any norm); the final norm only shapes hidden_states[-1], trained-like anyway.
    perturb_norm(encoder.norm, seed=1)
    return encoder


def build():
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel

    torch.manual_seed(0)
    tokenizer = qwen2_tokenizer()
    text_encoder = _text_encoder(tokenizer)
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2,
        n_refiner_layers=1, n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True, cap_feat_dim=32,
        rope_theta=256.0, t_scale=1000.0, axes_dims=[8, 4, 4], axes_lens=[1024, 64, 64])
    # x_pad_token / cap_pad_token are made with torch.empty: give them values (as diffusers'
    # tests do), or a picture can be NaN depending on the memory they got.
    with torch.no_grad():
        transformer.x_pad_token.copy_(torch.ones_like(transformer.x_pad_token))
        transformer.cap_pad_token.copy_(torch.ones_like(transformer.cap_pad_token))
    # Tongyi-MAI/Z-Image-Turbo's scheduler: a fixed shift of 3.
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    return ZImagePipeline(scheduler=scheduler, vae=flux_vae(), text_encoder=text_encoder,
                          tokenizer=tokenizer, transformer=transformer)
