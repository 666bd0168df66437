"""Qwen-Image: an MMDiT on Qwen2.5-VL's last hidden states (the prompt in a chat template
whose first 34 tokens are dropped); a Wan-style causal 3-D VAE (5-D latents, one frame) with
per-channel latents_mean/std; latents packed 2x2; true CFG (true_cfg_scale + negative prompt),
no distilled guidance."""

from __future__ import annotations

import torch

from .parts import perturb_norm
from .tokenizing import QWEN_IMAGE_SYSTEM, qwen2_tokenizer

DROP_IDX = 34  # QwenImagePipeline.prompt_template_encode_start_idx


def _text_encoder(tokenizer):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = tokenizer.convert_tokens_to_ids
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37,
                num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                max_position_embeddings=2048, rope_parameters={
                    "rope_type": "default", "mrope_section": [2, 2, 4], "rope_theta": 1000000.0},
                bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"),
                pad_token_id=ids("<|endoftext|>"))
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=dict(depth=1, hidden_size=16, intermediate_size=16,
                                             num_heads=2, out_hidden_size=32, patch_size=14,
                                             spatial_merge_size=2, window_size=56,
                                             fullatt_block_indexes=[0]),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
    perturb_norm(encoder.model.language_model.norm, seed=1)
    return encoder


def build():
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
    )

    torch.manual_seed(0)
    tokenizer = qwen2_tokenizer()
    prefix = f"<|im_start|>system\n{QWEN_IMAGE_SYSTEM}<|im_end|>\n<|im_start|>user\n"
    assert len(tokenizer(prefix).input_ids) == DROP_IDX  # the pipeline drops exactly these
    text_encoder = _text_encoder(tokenizer)
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=64, out_channels=16, num_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, guidance_embeds=False,
        axes_dims_rope=(4, 6, 6))
    # The real VAE's layout (3 downsamplings, the last two also in time; z_dim 16 with Wan's
    # latents_mean/std, its defaults) with narrow layers.
    vae = AutoencoderKLQwenImage(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                                 temperal_downsample=[False, True, True]).eval()
    # Qwen/Qwen-Image's scheduler: exponential time shift with mu from the token count (0.5 at
    # 256 tokens, 0.9 at 8192), sigmas stretched to end at 0.02.
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.5,
        max_shift=0.9, base_image_seq_len=256, max_image_seq_len=8192, shift_terminal=0.02,
        time_shift_type="exponential")
    return QwenImagePipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                             tokenizer=tokenizer, transformer=transformer)
