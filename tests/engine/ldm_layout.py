"""A Stable Diffusion 1.x pipeline's weights as one checkpoint in the original (ldm) layout, as
A1111 and ComfyUI users download them: ``model.diffusion_model.*`` (the UNet),
``first_stage_model.*`` (the VAE) and ``cond_stage_model.transformer.*`` (the CLIP text
encoder). diffusers reads this layout (``from_single_file``) but does not write it; this is the
inverse of its key mapping, for the tiny test pipelines (any ``layers_per_block``)."""

from __future__ import annotations

import torch

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"),
           ("conv_shortcut", "skip_connection"))
_UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
_VAE_ATTENTION = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"),
                  ("to_out.0", "proj_out"))


def _resnet(rest: str) -> str:
    for new, old in _RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def unet_keys(unet) -> dict[str, str]:
    """diffusers key → ldm key of a ``UNet2DConditionModel``."""
    per = unet.config.layers_per_block + 1  # ldm blocks per level: resnets (+ a resampler)
    has_attention = [bool(getattr(b, "attentions", None)) for b in unet.up_blocks]
    out = {}
    for key in unet.state_dict():
        parts = key.split(".")
        head = key.rsplit(".", 1)[0]
        if head in _UNET_TOP:
            out[key] = f"{_UNET_TOP[head]}.{parts[-1]}"
        elif parts[0] in ("down_blocks", "up_blocks"):
            level, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            if parts[0] == "down_blocks":
                if kind == "downsamplers":  # down_blocks.i.downsamplers.0.conv.w
                    out[key] = f"input_blocks.{(level + 1) * per}.0.op.{'.'.join(parts[5:])}"
                    continue
                block = f"input_blocks.{1 + level * per + index}"
            else:
                if kind == "upsamplers":
                    slot = 2 if has_attention[level] else 1
                    out[key] = f"output_blocks.{level * per + per - 1}.{slot}.{rest}"
                    continue
                block = f"output_blocks.{level * per + index}"
            out[key] = f"{block}.0.{_resnet(rest)}" if kind == "resnets" else f"{block}.1.{rest}"
        elif parts[0] == "mid_block":
            kind, index, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            slot = 1 if kind == "attentions" else 2 * index
            out[key] = f"middle_block.{slot}.{_resnet(rest) if kind == 'resnets' else rest}"
        else:
            raise KeyError(f"no ldm name for UNet key {key}")
    return out


def vae_keys(vae) -> dict[str, str]:
    """diffusers key → ldm key of an ``AutoencoderKL``."""
    levels = len(vae.config.block_out_channels)
    out = {}
    for key in vae.state_dict():
        parts = key.split(".")
        side, name = parts[0], parts[1] if len(parts) > 1 else ""
        if side in ("quant_conv", "post_quant_conv") or name in ("conv_in", "conv_out"):
            out[key] = key
        elif name == "conv_norm_out":
            out[key] = f"{side}.norm_out.{parts[-1]}"
        elif name in ("down_blocks", "up_blocks"):
            level = int(parts[2]) if name == "down_blocks" else levels - 1 - int(parts[2])
            ldm = "down" if name == "down_blocks" else "up"
            if parts[3] in ("downsamplers", "upsamplers"):
                sampler = "downsample" if ldm == "down" else "upsample"
                out[key] = f"{side}.{ldm}.{level}.{sampler}.{'.'.join(parts[5:])}"
            else:
                rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
                out[key] = f"{side}.{ldm}.{level}.block.{parts[4]}.{rest}"
        elif name == "mid_block" and parts[2] == "resnets":
            rest = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
            out[key] = f"{side}.mid.block_{int(parts[3]) + 1}.{rest}"
        elif name == "mid_block":
            rest = ".".join(parts[4:])
            for new, old in _VAE_ATTENTION:
                if rest.startswith(new + "."):
                    rest = old + rest[len(new):]
            out[key] = f"{side}.mid.attn_1.{rest}"
        else:
            raise KeyError(f"no ldm name for VAE key {key}")
    return out


def ldm_state_dict(pipe) -> dict[str, torch.Tensor]:
    """One state dict of ``pipe``'s UNet, VAE and text encoder in the ldm layout."""
    state: dict[str, torch.Tensor] = {}
    unet = pipe.unet.state_dict()
    for key, ldm in unet_keys(pipe.unet).items():
        state[f"model.diffusion_model.{ldm}"] = unet[key]
    vae = pipe.vae.state_dict()
    for key, ldm in vae_keys(pipe.vae).items():
        tensor = vae[key]
        if ".mid.attn_1." in ldm and ldm.endswith(".weight") and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]  # ldm's attention projections are 1x1 convolutions
        state[f"first_stage_model.{ldm}"] = tensor
    for key, tensor in pipe.text_encoder.state_dict().items():
        # transformers 5 dropped the text_model prefix from CLIPTextModel's keys; files have it
        name = key if key.startswith("text_model.") else f"text_model.{key}"
        state[f"cond_stage_model.transformer.{name}"] = tensor
    return {k: v.detach().contiguous() for k, v in state.items()}
