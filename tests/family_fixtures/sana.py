"""Sana: a linear-attention DiT with cross-attention to Gemma-2's last hidden states (the
prompt after a long "complex human instruction", cut back to max_sequence_length); a deep-
compression autoencoder (AutoencoderDC: 32 channels, 32x in the real one), scale only; a
flow-matching model sampled by DPM-Solver++ in flow mode."""

from __future__ import annotations

import torch

from .parts import perturb_norm
from .tokenizing import gemma_tokenizer


def gemma2(tokenizer, width: int = 16, layers: int = 2):
    from transformers import Gemma2Config, Gemma2Model

    config = Gemma2Config(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=32,
                          num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
                          head_dim=8, max_position_embeddings=2048, sliding_window=64,
                          pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, attn_implementation="eager")
    encoder = Gemma2Model(config).eval()
    perturb_norm(encoder.norm, seed=1)  # Gemma's RMSNorm scales by (1 + weight), weight 0 fresh
    return encoder


def _dc_ae():
    from diffusers import AutoencoderDC

    blocks = ("ResBlock", "ResBlock", "EfficientViTBlock", "EfficientViTBlock")
    return AutoencoderDC(
        in_channels=3, latent_channels=32, attention_head_dim=4, encoder_block_types=blocks,
        decoder_block_types=blocks, encoder_block_out_channels=(8, 8, 16, 32),
        decoder_block_out_channels=(8, 8, 16, 32), encoder_layers_per_block=(1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1), encoder_qkv_multiscales=((), (), (5,), (5,)),
        decoder_qkv_multiscales=((), (), (5,), (5,)), upsample_block_type="interpolate",
        downsample_block_type="conv", decoder_norm_types="rms_norm", decoder_act_fns="silu",
        scaling_factor=0.41407).eval()


def build():
    from diffusers import DPMSolverMultistepScheduler, SanaPipeline, SanaTransformer2DModel

    torch.manual_seed(0)
    tokenizer = gemma_tokenizer()
    text_encoder = gemma2(tokenizer)
    transformer = SanaTransformer2DModel(
        in_channels=32, out_channels=32, num_attention_heads=2, attention_head_dim=8, num_layers=2,
        num_cross_attention_heads=2, cross_attention_head_dim=8, cross_attention_dim=16,
        caption_channels=16, sample_size=8, patch_size=1)
    # Efficient-Large-Model/Sana_1600M_1024px_diffusers' scheduler (the conversion script's
    # default "flow-dpm_solver"): DPM-Solver++ on flow sigmas, flow_shift 3.
    scheduler = DPMSolverMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True,
                                            prediction_type="flow_prediction")
    return SanaPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=_dc_ae(),
                        transformer=transformer, scheduler=scheduler)
