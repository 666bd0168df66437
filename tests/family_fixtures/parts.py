"""Parts shared by the tiny family fixtures: text encoders with trained-like output norms, and
small VAEs with each family's real latent scale/shift factors."""

from __future__ import annotations

import torch


def perturb_norm(norm: torch.nn.Module, seed: int, scale: float = 0.5) -> None:
    """Give a freshly made norm layer trained-like statistics: a fresh LayerNorm has zero bias
    and an RMSNorm unit (or, Gemma's, zero-offset) weight, so a random encoder's embeddings
    average 0 per channel and the random denoiser can paint flat or NaN pictures. Its own
    generator, so every other weight stays what the global seed made it."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in ("weight", "bias"):
            param = getattr(norm, name, None)
            if isinstance(param, torch.Tensor):
                param.add_(scale * torch.randn(param.shape, generator=generator))


def clip_text_encoder(tokenizer, width: int, projection: bool, seed: int, max_positions: int = 77,
                      layers: int = 2):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=37,
                            num_hidden_layers=layers, num_attention_heads=4,
                            max_position_embeddings=max_positions, projection_dim=width,
                            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id)
    encoder = (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()
    perturb_norm(getattr(encoder, "text_model", encoder).final_layer_norm, seed)
    return encoder


def t5_encoder(tokenizer, width: int, seed: int):
    """A T5 v1.1-style encoder (gated-GELU, RMS norms), in eval mode (no dropout)."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=len(tokenizer), d_model=width, d_kv=8, d_ff=37, num_layers=2,
                      num_heads=4, relative_attention_num_buckets=8, feed_forward_proj="gated-gelu",
                      dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=0)
    encoder = T5EncoderModel(config).eval()
    perturb_norm(encoder.encoder.final_layer_norm, seed)
    return encoder


def kl_vae(latent_channels: int, blocks: int, scaling_factor: float,
           shift_factor: float | None = None, quant_conv: bool = True, channels: int = 8):
    """An AutoencoderKL with ``blocks`` levels (scale factor 2 ** (blocks - 1))."""
    from diffusers import AutoencoderKL

    widths = tuple(channels * min(2 ** i, 2) for i in range(blocks))
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks, block_out_channels=widths,
        layers_per_block=1, latent_channels=latent_channels, norm_num_groups=channels,
        sample_size=64, scaling_factor=scaling_factor, shift_factor=shift_factor,
        use_quant_conv=quant_conv, use_post_quant_conv=quant_conv).eval()


def flux_vae():
    """FLUX.1's VAE kind (also Chroma's, Z-Image's, Lumina 2's, HiDream's): 16 channels, 8x,
    scale 0.3611 and shift 0.1159, no quant convs."""
    return kl_vae(16, 4, 0.3611, 0.1159, quant_conv=False)


def sd3_vae():
    """SD3's VAE kind: 16 channels, 8x, scale 1.5305 and shift 0.0609, no quant convs."""
    return kl_vae(16, 4, 1.5305, 0.0609, quant_conv=False)


def sdxl_vae():
    """SDXL's VAE kind (Kolors', PixArt-Σ's): 4 channels, 8x, scale 0.13025."""
    return kl_vae(4, 4, 0.13025)
