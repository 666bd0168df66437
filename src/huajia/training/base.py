"""The embedded model's recipe: tokenizer → VAE → cached latents → UNet + text encoder.

Seeded and resumable: each stage checkpoints into ``OUT/checkpoints`` and ``resume=True``
continues where it stopped. Captions are drawn afresh at every step from each cached scene
(language, template, paraphrases and which attributes are left out), so a few tens of thousands
of pictures give far more distinct (picture, caption) pairs. CUDA is used when present.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionPipeline

from huajia.engine.images import to_tensor
from huajia.engine.loading import dtype_kwargs, pick_device
from huajia.errors import HuajiaError
from huajia.training import components as C
from huajia.training.recipes import BaseRecipe
from huajia.world import captions, sampler
from huajia.world.dataset import described_spec
from huajia.world.render import render
from huajia.world.spec import Scene

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def training_device() -> torch.device:
    """The engine's device choice (CUDA when present); on the CPU, training uses every core
    unless OMP_NUM_THREADS says otherwise (one thread leaves a core free without stalls)."""
    device, _ = pick_device()
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    return device


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def random_caption(scene: Scene, rng: np.random.Generator, dropout: float,
                   colour_drop: float = 0.0) -> str:
    """A fresh training caption for ``scene``: any train template, en or zh, or '' (for CFG)."""
    if rng.random() < dropout:
        return ""
    spec = described_spec(scene, rng, colour_drop)
    frames = captions.templates("en" if rng.random() < 0.5 else "zh", "train")
    return captions.caption(spec, frames[int(rng.integers(len(frames)))], rng)


class _StageClock:
    """A stage's wall time summed over every session that worked on it (runs get resumed)."""

    def __init__(self, state: dict | None):
        self.before = (state or {}).get("elapsed_s", 0.0)
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.start


class _Checkpoints:
    def __init__(self, out: Path):
        self.folder = out / "checkpoints"
        self.folder.mkdir(parents=True, exist_ok=True)

    def load(self, stage: str) -> dict | None:
        path = self.folder / f"{stage}.pt"
        return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None

    def save(self, stage: str, state: dict) -> None:
        tmp = self.folder / f"{stage}.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.folder / f"{stage}.pt")  # atomic: a crash never leaves half a file

    def remove(self, stage: str) -> None:
        (self.folder / f"{stage}.pt").unlink(missing_ok=True)


def _scenes(recipe: BaseRecipe) -> list[Scene]:
    """The recipe's scenes; with ``mirror_pairs`` their mirror images follow them (scene i's
    mirror is scene i + n_scenes)."""
    scenes = [_scene(recipe, i) for i in range(recipe.n_scenes)]
    if recipe.mirror_pairs:
        scenes += [sampler.mirrored(s, sampler.mirror_axis(s)) for s in scenes]
    return scenes


def _scene(recipe: BaseRecipe, index: int) -> Scene:
    """Scene ``index`` of the recipe; with ``relation_share`` the scene is redrawn until it states
    a relation (with that chance), so related scenes keep the sampler's own mix of kinds."""
    rng = np.random.default_rng([recipe.seed, 1, index])
    scene = sampler.sample_scene(rng, "train", seed=index)
    if recipe.relation_share > 0 and rng.random() < recipe.relation_share:
        while not scene.spec.relations:
            scene = sampler.sample_scene(rng, "train", seed=index)
    return scene


def _train_tokenizer(recipe: BaseRecipe, scenes: list[Scene]):
    rng = np.random.default_rng([recipe.seed, 2])
    texts = [random_caption(s, rng, 0.0) for s in scenes for _ in range(2)]
    return C.train_tokenizer(texts, recipe.size)


def train_vae(recipe: BaseRecipe, scenes: list[Scene], ckpt: _Checkpoints, device: torch.device,
              progress: Progress) -> torch.nn.Module:
    """Autoencoder on random 64-px crops (convolutions only see local structure)."""
    torch.manual_seed(recipe.seed)
    vae = C.build_vae(recipe.size).to(device)
    opt = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr, weight_decay=0.0)
    state, step = ckpt.load("vae"), 0
    if state:
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
    clock = _StageClock(state)
    rng = np.random.default_rng([recipe.seed, 3, step])
    side, crop = recipe.size.image_side, recipe.vae_crop
    while step < recipe.vae_steps:
        picks = rng.integers(len(scenes), size=recipe.vae_batch)
        batch = to_tensor([render(scenes[i], side) for i in picks])
        x0, y0 = rng.integers(0, side - crop + 1, size=2) // 8 * 8
        x = batch[:, :, y0:y0 + crop, x0:x0 + crop].to(device)
        for group in opt.param_groups:
            group["lr"] = recipe.vae_lr * _lr_factor(step, recipe.vae_steps, recipe.warmup)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        # the pooled term weighs flat colour, which the verifier reads, above pixel detail
        pooled = F.l1_loss(F.avg_pool2d(recon, 4), F.avg_pool2d(x, 4))
        loss = (F.l1_loss(recon, x) + F.mse_loss(recon, x) + pooled
                + 1e-6 * posterior.kl().mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        progress("vae", step, recipe.vae_steps)
        if step % recipe.checkpoint_every == 0 or step == recipe.vae_steps:
            ckpt.save("vae", {"model": vae.state_dict(), "opt": opt.state_dict(), "step": step,
                              "elapsed_s": clock.elapsed()})
    return vae.eval()


@torch.no_grad()
def encode_latents(vae, scenes: list[Scene], recipe: BaseRecipe, device: torch.device,
                   progress: Progress) -> tuple[torch.Tensor, float]:
    """Posterior means of every scene, and the scaling factor that gives them unit variance."""
    chunks = []
    for start in range(0, len(scenes), 64):
        images = [render(s, recipe.size.image_side) for s in scenes[start:start + 64]]
        chunks.append(vae.encode(to_tensor(images).to(device)).latent_dist.mean.cpu())
        progress("latents", min(start + 64, len(scenes)), len(scenes))
    latents = torch.cat(chunks)
    return latents, float(1.0 / latents.std())


def _cached_latents(vae, scenes: list[Scene], recipe: BaseRecipe, ckpt: _Checkpoints,
                    device: torch.device, progress: Progress) -> tuple[torch.Tensor, float]:
    """Encoding 24k scenes takes minutes on a CPU: keep them beside the checkpoints so that a
    resumed (or extended) UNet stage starts at once. Keyed by the recipe's data and VAE."""
    key = {"seed": recipe.seed, "n_scenes": recipe.n_scenes, "vae_steps": recipe.vae_steps,
           "init_from": recipe.init_from, "relation_share": recipe.relation_share,
           "mirror_pairs": recipe.mirror_pairs}
    cached = ckpt.load("latents")
    if cached and cached["key"] == key:
        return cached["latents"], cached["scaling"]
    start = time.perf_counter()
    latents, scaling = encode_latents(vae, scenes, recipe, device, progress)
    ckpt.save("latents", {"key": key, "latents": latents, "scaling": scaling,
                          "elapsed_s": time.perf_counter() - start})
    return latents, scaling


def _ema_update(ema: dict, model: torch.nn.Module, step: int) -> None:
    state = {k: v for k, v in model.state_dict().items() if v.dtype.is_floating_point}
    C.ema_update([ema[k] for k in state], list(state.values()), 0.999, step)


def _batch(recipe: BaseRecipe, scenes: list[Scene],
           rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Scene indices and captions of one UNet batch. Mirror pairs are captioned from one seed,
    so both sentences share their frame, language and dropped words."""
    if not recipe.mirror_pairs:
        picks = rng.integers(len(scenes), size=recipe.unet_batch)
        return picks, [random_caption(scenes[i], rng, recipe.caption_dropout, recipe.colour_drop)
                       for i in picks]
    n = len(scenes) // 2
    first = rng.integers(n, size=max(1, recipe.unet_batch // 2))
    seeds = rng.integers(2**63, size=len(first))
    texts = [random_caption(scenes[i + offset], np.random.default_rng(seed),
                            recipe.caption_dropout, recipe.colour_drop)
             for offset in (0, n) for i, seed in zip(first, seeds, strict=True)]
    return np.concatenate([first, first + n]), texts


def train_unet(recipe: BaseRecipe, scenes: list[Scene], latents: torch.Tensor, tokenizer,
               ckpt: _Checkpoints, device: torch.device, progress: Progress, init=None):
    """Text encoder + UNet, v-prediction with min-SNR weighting; EMA weights are returned.
    ``init`` (a pipeline) gives the starting weights of a fine-tune."""
    torch.manual_seed(recipe.seed + 1)
    if init is None:
        text_encoder = C.build_text_encoder(tokenizer, recipe.size).to(device)
        unet = C.build_unet(recipe.size).to(device)
    else:
        text_encoder, unet = init.text_encoder.to(device).train(), init.unet.to(device).train()
    scheduler = C.build_scheduler()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=recipe.unet_lr, weight_decay=0.01)
    ema = {"unet": {k: v.detach().clone() for k, v in unet.state_dict().items()},
           "text": {k: v.detach().clone() for k, v in text_encoder.state_dict().items()}}
    state, step = ckpt.load("unet"), 0
    if state:
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text"])
        opt.load_state_dict(state["opt"])
        ema, step = state["ema"], state["step"]
    clock = _StageClock(state)
    alphas = scheduler.alphas_cumprod.to(device)
    weight_table = C.snr_loss_weights(alphas, True, recipe.min_snr_gamma, recipe.min_snr_floor)
    rng = np.random.default_rng([recipe.seed, 4, step])
    while step < recipe.unet_steps:
        picks, texts = _batch(recipe, scenes, rng)
        ids = tokenizer(texts, padding="max_length", max_length=C.MAX_TOKENS, truncation=True,
                        return_tensors="pt").input_ids.to(device)
        z = latents[torch.from_numpy(picks)].to(device)
        noise = torch.randn_like(z)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(picks),), device=device)
        if recipe.mirror_pairs:  # a pair shares its noise and step: only the word differs
            half = len(picks) // 2
            noise[half:], t[half:] = noise[:half], t[:half]
        noisy = scheduler.add_noise(z, noise, t)
        target = scheduler.get_velocity(z, noise, t)
        for group in opt.param_groups:
            group["lr"] = recipe.unet_lr * _lr_factor(step, recipe.unet_steps, recipe.warmup)
        pred = unet(noisy, t, text_encoder(ids)[0]).sample
        per_sample = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))
        loss = (per_sample * weight_table[t]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        _ema_update(ema["unet"], unet, step)
        _ema_update(ema["text"], text_encoder, step)
        step += 1
        progress("unet", step, recipe.unet_steps)
        if step % recipe.checkpoint_every == 0 or step == recipe.unet_steps:
            ckpt.save("unet", {"unet": unet.state_dict(), "text": text_encoder.state_dict(),
                               "opt": opt.state_dict(), "ema": ema, "step": step,
                               "loss": loss.item(), "elapsed_s": clock.elapsed()})
    unet.load_state_dict(ema["unet"])
    text_encoder.load_state_dict(ema["text"])
    return unet.eval(), text_encoder.eval(), scheduler


def train_base(recipe: BaseRecipe, out: str | Path, resume: bool = False,
               progress: Progress | None = None) -> Path:
    """Train the whole embedded model into ``OUT/model`` (a StableDiffusionPipeline folder)."""
    out = Path(out)
    ckpt = _Checkpoints(out)
    if not resume:
        for stale in ckpt.folder.glob("*.pt"):
            stale.unlink()
    progress = progress or (lambda stage, done, total: None)
    device = training_device()
    start = time.perf_counter()
    scenes = _scenes(recipe)
    init, init_dir = _load_init(recipe.init_from) if recipe.init_from else (None, None)
    if init is None:
        tokenizer = _train_tokenizer(recipe, scenes)
        vae = train_vae(recipe, scenes, ckpt, device, progress)
    else:
        tokenizer, vae = init.tokenizer, init.vae.to(device).eval()
    latents, scaling = _cached_latents(vae, scenes, recipe, ckpt, device, progress)
    if init is not None:  # the UNet learned latents at the old scale: keep it
        scaling = float(init.vae.config.scaling_factor)
    unet, text_encoder, scheduler = train_unet(
        recipe, scenes, latents * scaling, tokenizer, ckpt, device, progress, init)
    vae.register_to_config(scaling_factor=scaling)
    model_dir = out / "model"
    previous = _previous_record(init_dir or model_dir)
    refinement = (previous.get("decoder_refinement") if init
                  else _keep_refined_decoder(vae, model_dir, previous))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16).save_pretrained(model_dir)  # fp16 keeps the shipped files small
    C.make_portable(model_dir)
    unet_state = ckpt.load("unet") or {}
    # stage times add up every session that worked on them, so resumed runs report the truth
    timings = {"vae_s": (ckpt.load("vae") or {}).get("elapsed_s"),
               "latents_s": (ckpt.load("latents") or {}).get("elapsed_s"),
               "unet_s": unet_state.get("elapsed_s"),
               "this_session_s": time.perf_counter() - start}
    timings["total_s"] = sum(timings[k] or 0.0 for k in ("vae_s", "latents_s", "unet_s"))
    card = {"recipe": recipe.to_dict(), "timings": timings, "device": str(device),
            "hardware": hardware(), "final_unet_loss": unet_state.get("loss"),
            "notes": previous.get("notes", [])}
    if refinement:
        card["decoder_refinement"] = refinement
    if init is not None:  # what the starting weights cost stays on record
        card["fine_tuned_from"] = _starting_model(previous, model_dir, resume)
    (model_dir / "training.json").write_text(json.dumps(card, indent=1))
    return model_dir


def _load_init(model_dir: str) -> tuple[StableDiffusionPipeline, Path]:
    """The pipeline a fine-tune starts from, in fp32 (shipped weights are fp16), and its folder."""
    from huajia.engine.loading import resolve_model

    source = resolve_model(model_dir)
    if not source.is_local:
        raise HuajiaError(f"--init-from '{model_dir}' must be a local pipeline folder or 'embedded'")
    pipe = StableDiffusionPipeline.from_pretrained(
        source.location, safety_checker=None, requires_safety_checker=False,
        **dtype_kwargs(torch.float32))
    return pipe, Path(source.location)


def _keep_refined_decoder(vae, model_dir: Path, previous: dict) -> dict | None:
    """A decoder refined by ``refine_decoder`` (its record says so) survives a re-export after
    more UNet training: the encoder, and so the latents, are the checkpoint's either way."""
    refinement = previous.get("decoder_refinement")
    if not refinement or not (model_dir / "vae").is_dir():
        return None
    refined = type(vae).from_pretrained(model_dir / "vae").state_dict()
    vae.load_state_dict({k: v.to(vae.dtype) for k, v in refined.items()
                         if k.startswith(("decoder.", "post_quant_conv."))}, strict=False)
    return refinement


def _starting_model(init_record: dict, model_dir: Path, resume: bool) -> dict:
    """The record of the weights a fine-tune started from. A resumed run keeps the one its first
    export wrote: its UNet comes from the checkpoint, and ``--init-from`` may by now name a later
    export of this very run (e.g. 'embedded' after installing it)."""
    started = _previous_record(model_dir).get("fine_tuned_from") if resume else None
    return started or {k: init_record.get(k) for k in ("recipe", "timings", "hardware")}


def _previous_record(model_dir: Path) -> dict:
    """The last export's training.json: its hand-written notes (e.g. a recipe change mid-way)
    and decoder refinement survive a resumed run."""
    record = model_dir / "training.json"
    return json.loads(record.read_text()) if record.is_file() else {}


def hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"
