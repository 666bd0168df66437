"""Kolors: an SDXL-shaped UNet conditioned on ChatGLM3 (one encoder; its penultimate layer's
states are the context, its last layer's last token the pooled vector)."""

from __future__ import annotations

import torch

from .parts import sdxl_vae
from .tokenizing import chatglm_tokenizer


def _chatglm(tokenizer):
    from diffusers.pipelines.kolors import ChatGLMModel
    from diffusers.pipelines.kolors.text_encoder import ChatGLMConfig

    config = ChatGLMConfig(num_layers=2, padded_vocab_size=len(tokenizer), hidden_size=32,
                           ffn_hidden_size=37, kv_channels=8, num_attention_heads=4,
                           seq_length=256, multi_query_attention=True, multi_query_group_num=2,
                           original_rope=True, use_cache=False, dtype="float32")
    encoder = ChatGLMModel(config).eval()
    # ChatGLMModel builds its parts with torch's skip_init (uninitialised memory) and its
    # _init_weights does nothing: give every weight a value, from the global seed.
    with torch.no_grad():
        for name, param in encoder.named_parameters():
            if name.endswith("layernorm.weight"):
                param.fill_(1.0)
            elif "word_embeddings" in name:
                param.normal_(0.0, 1.0)
            else:
                param.normal_(0.0, 0.1)
    return encoder


def build():
    from diffusers import EulerDiscreteScheduler, KolorsPipeline, UNet2DConditionModel

    torch.manual_seed(0)
    tokenizer = chatglm_tokenizer()
    text_encoder = _chatglm(tokenizer)
    # As Kolors' UNet: the 4096-wide ChatGLM states go through a text_proj to the 2048-wide
    # cross-attention; the added embedding is the pooled vector + 6 time ids.
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), norm_num_groups=8,
        attention_head_dim=(2, 4), use_linear_projection=True, transformer_layers_per_block=(1, 1),
        cross_attention_dim=48, encoder_hid_dim_type="text_proj", encoder_hid_dim=32,
        addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=32 + 6 * 8)
    vae = sdxl_vae()
    # Kwai-Kolors/Kolors-diffusers' scheduler: SDXL's schedule to 1100 steps, beta_end 0.014.
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1100, beta_start=0.00085, beta_end=0.014, beta_schedule="scaled_linear",
        prediction_type="epsilon", steps_offset=1, timestep_spacing="leading")
    return KolorsPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                          scheduler=scheduler, force_zeros_for_empty_prompt=False)
