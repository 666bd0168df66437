"""Refine the embedded model's VAE decoder with the encoder frozen (as Stable Diffusion's
ft-MSE VAE): sharper textures and truer colours, while the latents — and so the UNet — stay
valid. A texture focus draws more textured objects and weighs their pattern pixels higher,
because a plain pixel loss lets the small 8x latent blur dots away."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from huajia.engine.images import to_tensor
from huajia.engine.loading import dtype_kwargs
from huajia.training.base import Progress, _Checkpoints, _lr_factor, training_device
from huajia.training.model_card import decoder_passes
from huajia.world import sampler
from huajia.world.render import render
from huajia.world.spec import Scene

TEXTURE_WEIGHT = 6.0  # extra loss weight on pixels that differ from the solid drawing


def _high_pass(x: torch.Tensor) -> torch.Tensor:
    """Image minus its 3x3 blur: the edges and texture that plain L1 under-weights."""
    return x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def _retextured(scene: Scene, rng: np.random.Generator, focus: float) -> Scene:
    """The scene with each object, with chance ``focus``, redrawn dotted (2/3) or striped."""
    objects = tuple(
        dataclasses.replace(o, texture=str(rng.choice(["dotted", "dotted", "striped"])))
        if rng.random() < focus else o for o in scene.objects)
    return dataclasses.replace(scene, objects=objects)


def decoder_batch(rng: np.random.Generator, batch: int,
                  texture_focus: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Training pictures and per-pixel loss weights (higher on texture patterns, a few pixels
    around them included)."""
    pictures, solids = [], []
    for _ in range(batch):
        scene = sampler.sample_scene(rng, "train", seed=int(rng.integers(1 << 30)))
        scene = _retextured(scene, rng, texture_focus)
        pictures.append(render(scene))
        solid = tuple(dataclasses.replace(o, texture="solid") for o in scene.objects)
        solids.append(render(dataclasses.replace(scene, objects=solid)))
    x, flat = to_tensor(pictures), to_tensor(solids)
    pattern = ((x - flat).abs().amax(1, keepdim=True) > 0.05).float()
    return x, 1 + TEXTURE_WEIGHT * F.max_pool2d(pattern, 5, stride=1, padding=2)


def decoder_loss(recon: torch.Tensor, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """L1 + L2 and high-pass L1, weighted per pixel, plus flat colour (what the verifier reads)."""
    error = (recon - x).abs()
    detail = (_high_pass(recon) - _high_pass(x)).abs()
    norm = weights.mean()
    return (((error + error ** 2) * weights).mean() / norm
            + F.l1_loss(F.avg_pool2d(recon, 4), F.avg_pool2d(x, 4))
            + 2.0 * (detail * weights).mean() / norm)


def refine_decoder(model_dir: str | Path, steps: int, seed: int = 0, batch: int = 8,
                   lr: float = 2e-4, texture_focus: float = 0.0,
                   progress: Progress | None = None) -> Path:
    """Fine-tune MODEL_DIR's VAE decoder, encoder frozen, and save it in place; the pass is
    added to MODEL_DIR/training.json. Resumable: checkpoints in MODEL_DIR/../checkpoints."""
    from diffusers import AutoencoderKL

    model_dir = Path(model_dir)
    progress = progress or (lambda stage, done, total: None)
    device = training_device()
    vae = AutoencoderKL.from_pretrained(model_dir / "vae", **dtype_kwargs(torch.float32)).to(device)
    trainable = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    vae.requires_grad_(False)
    for param in trainable:
        param.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    ckpt = _Checkpoints(model_dir.parent)
    state, step = ckpt.load("decoder"), 0
    if state:
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
    rng = np.random.default_rng([seed, 5, step])
    start = time.perf_counter()
    while step < steps:
        x, weights = decoder_batch(rng, batch, texture_focus)
        x, weights = x.to(device), weights.to(device)
        with torch.no_grad():
            latents = vae.encode(x).latent_dist.mode()
        loss = decoder_loss(vae.decode(latents).sample, x, weights)
        for group in opt.param_groups:
            group["lr"] = lr * _lr_factor(step, steps, 50)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        step += 1
        progress("decoder", step, steps)
        if step % 100 == 0 or step == steps:
            ckpt.save("decoder", {"model": vae.state_dict(), "opt": opt.state_dict(), "step": step})
    vae.to(torch.float16).save_pretrained(model_dir / "vae")
    ckpt.remove("decoder")  # finished: a later pass starts afresh from these weights
    _record_pass(model_dir, {"steps": steps, "batch": batch, "lr": lr,
                             "texture_focus": texture_focus,
                             "last_session_s": time.perf_counter() - start})
    return model_dir / "vae"


def _record_pass(model_dir: Path, refinement: dict) -> None:
    """Append this pass to the model card's record (earlier passes stay listed)."""
    record = model_dir / "training.json"
    if not record.is_file():
        return
    card = json.loads(record.read_text())
    card["decoder_refinement"] = [*decoder_passes(card), refinement]
    record.write_text(json.dumps(card, indent=1))
