"""Three of diffusers' own test pipelines (``get_dummy_components`` in diffusers' tests, main
branch 2026-12), whose shapes differ from the real models' more than this package's fixtures
do: FLUX.1 on a one-block VAE (scale 1, one latent channel), SD3 on 4-channel latents, and
Z-Image with a rotary table of 32 positions per image axis and 256 for text. Tokenizers are
made here (``tokenizing``) and encoders' vocabularies sized to them."""

from __future__ import annotations

import torch

from . import tokenizing as tok


def _t5(vocab: int):
    from transformers import T5Config, T5EncoderModel

    # hf-internal-testing/tiny-random-t5's config
    config = T5Config(vocab_size=max(vocab, 1103), d_model=32, d_ff=37, d_kv=8, num_heads=4,
                      num_layers=5, relative_attention_num_buckets=8, is_encoder_decoder=True)
    return T5EncoderModel(config).eval()


def _clip(projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37,
                            layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=5,
                            pad_token_id=1, vocab_size=1000, hidden_act="gelu", projection_dim=32)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _one_block_vae(latent_channels: int):
    from diffusers import AutoencoderKL

    return AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,),
                         layers_per_block=1, latent_channels=latent_channels, norm_num_groups=1,
                         use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
                         scaling_factor=1.5035)


def sd3():
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8,
        num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32,
        pooled_projection_dim=64, out_channels=4)
    torch.manual_seed(0)
    clip_l = _clip(projection=True)
    torch.manual_seed(0)
    clip_g = _clip(projection=True)
    t5_tokenizer = tok.t5_tokenizer()
    torch.manual_seed(0)
    t5 = _t5(len(t5_tokenizer))
    torch.manual_seed(0)
    return StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), text_encoder=clip_l, text_encoder_2=clip_g,
        text_encoder_3=t5, tokenizer=tok.clip_tokenizer(), tokenizer_2=tok.clip_tokenizer(),
        tokenizer_3=t5_tokenizer, transformer=transformer, vae=_one_block_vae(4),
        image_encoder=None, feature_extractor=None)


def flux():
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8])
    torch.manual_seed(0)
    clip_l = _clip(projection=False)
    t5_tokenizer = tok.t5_tokenizer()
    torch.manual_seed(0)
    t5 = _t5(len(t5_tokenizer))
    torch.manual_seed(0)
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), text_encoder=clip_l, text_encoder_2=t5,
        tokenizer=tok.clip_tokenizer(), tokenizer_2=t5_tokenizer, transformer=transformer,
        vae=_one_block_vae(1), image_encoder=None, feature_extractor=None)


def zimage():
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        ZImagePipeline,
        ZImageTransformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(0)
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2,
        n_refiner_layers=1, n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True,
        cap_feat_dim=16, rope_theta=256.0, t_scale=1000.0, axes_dims=[8, 4, 4],
        axes_lens=[256, 32, 32])
    with torch.no_grad():  # made with torch.empty: fixed, as diffusers' test does
        transformer.x_pad_token.copy_(torch.ones_like(transformer.x_pad_token.data))
        transformer.cap_pad_token.copy_(torch.ones_like(transformer.cap_pad_token.data))
    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[32, 64], layers_per_block=1,
        latent_channels=16, norm_num_groups=32, sample_size=32, scaling_factor=0.3611,
        shift_factor=0.1159)
    tokenizer = tok.qwen2_tokenizer()
    torch.manual_seed(0)
    text_encoder = Qwen3Model(Qwen3Config(
        hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=512))
    return ZImagePipeline(transformer=transformer, vae=vae,
                          scheduler=FlowMatchEulerDiscreteScheduler(), text_encoder=text_encoder,
                          tokenizer=tokenizer)


BUILDERS = {"sd3": sd3, "flux": flux, "zimage": zimage}
