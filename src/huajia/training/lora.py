"""LoRA training on an image/caption folder, for every model family huajia paints with.

peft adapters on the denoiser's attention projections (to_q, to_k, to_v, to_out.0, and the
text stream's add_q/k/v_proj and to_add_out where the family has them; a UNet's ResNet convs
too with ``conv_rank``) and, where the text encoders are CLIP, on them. What the denoiser takes
besides its latents and time is what the family's own pipeline gives it (``denoiser_call``);
what it should predict is the family's objective (``objectives``: ε/v on a DDPM schedule, or
flow matching with the family's shift). accelerate chooses device and precision. The result is
``pytorch_lora_weights.safetensors`` in diffusers' format (``pipe.load_lora_weights`` reads it)
with kohya-style ``ss_*`` training metadata in the file header. Resumable, with sample pictures
every K steps and a loss curve at the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from huajia.engine.lora import WEIGHT_NAME, embeddings_path
from huajia.errors import HuajiaError
from huajia.imagefolder import iter_samples
from huajia.params import canonical
from huajia.training.buckets import bucket_sizes, cover_crop, nearest_bucket
from huajia.training.components import ema_update
from huajia.training.denoiser_call import CaptionCalls, stacked
from huajia.training.new_words import NewWords
from huajia.training.objectives import objective_for
from huajia.training.precision import autocast, check_precision
from huajia.training.recipes import LoraRecipe

# kohya's LoCon: also the ResNet 3x3 convolutions, where a new shape's outline lives at
# the small latent sizes (attention only sees where things go, not their corners)
UNET_CONV_TARGETS = ["conv1", "conv2"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def _fit(image: Image.Image, size: tuple[int, int], crop: bool) -> Image.Image:
    """``image`` at ``size`` (W, H): squashed, or scaled to cover and centre-cropped."""
    return cover_crop(image, size) if crop else image.resize(size, Image.Resampling.BICUBIC)


def _plain_caption(text: str) -> str:
    """A caption without Data-Juicer's special tokens (its exports may carry them)."""
    return text.replace("<__dj__image>", "").replace("<|__dj__eoc|>", "").strip()


def _load_examples(folder: str, side: int, crop: bool = False, buckets: list | None = None
                   ) -> tuple[list[np.ndarray], list[np.ndarray], list[list[str]]]:
    """``folder``'s pictures (an imagefolder, a Data-Juicer export such as ``huajia curate``'s
    result.jsonl, a CSV, or pictures with .txt captions) at ``side`` (squashed or
    centre-cropped) or, given ``buckets``, cropped to the (W, H) bucket of nearest aspect;
    their alpha masks (all ones without an
    alpha channel; the colours are used as they are, not composited) and, per image, its
    captions (text and text_zh if present)."""
    images, masks, captions = [], [], []
    for sample in iter_samples(folder):
        path = sample.path
        try:
            with Image.open(path) as image:
                has_alpha = image.mode in ("RGBA", "LA") or "transparency" in image.info
                # colour and alpha apart: an RGBA resize premultiplies, blacking out the
                # colours under alpha 0
                image = image.convert("RGBA" if has_alpha else "RGB")
                size = nearest_bucket(image.size, buckets) if buckets else (side, side)
                pixels = _fit(image.convert("RGB"), size, crop or bool(buckets))
                alpha = _fit(image.getchannel("A"), size, crop or bool(buckets)) if has_alpha else None
        except OSError as error:
            raise HuajiaError(f"cannot read '{path}' ({error}); curate the folder first "
                              "with 'huajia curate'") from error
        images.append(np.asarray(pixels, dtype=np.float32) / 127.5 - 1.0)
        masks.append(np.ones(size[::-1], np.float32) if alpha is None
                     else np.asarray(alpha, dtype=np.float32) / 255.0)
        texts = (sample.text, sample.extra.get("text_zh"))
        captions.append([_plain_caption(t) for t in texts if t and _plain_caption(t)] or [""])
    if not images:
        raise HuajiaError(f"'{folder}' has no images to train on")
    return images, masks, captions


def adapter_state(module) -> dict:
    """peft-format keys (lora_A/lora_B), as diffusers loads them without conversion (not the
    embedding table that new words resized: those rows go to their own file)."""
    from peft.utils import get_peft_model_state_dict

    if getattr(module, "peft_config", None):
        return get_peft_model_state_dict(module, save_embedding_layers=False)
    return {name.replace(".default", ""): param.detach().clone()  # injected by peft directly
            for name, param in module.named_parameters() if "lora_" in name}


def folded_state(module) -> dict:
    """``adapter_state`` with each layer's alpha / rank folded into its ``lora_B``, so the
    file paints as trained wherever it is loaded at alpha = rank (diffusers' loader without
    adapter metadata, kohya-style loaders, huajia's); the trained alpha stays in the header."""
    from peft.tuners.lora import LoraLayer

    scales = {name: layer.scaling["default"] for name, layer in module.named_modules()
              if isinstance(layer, LoraLayer) and "default" in layer.scaling}
    folded = {}
    for key, value in adapter_state(module).items():
        layer = key.rsplit(".lora_B", 1)[0] if ".lora_B" in key else None
        folded[key] = value * scales[layer] if layer in scales else value
    return folded


def _load_adapter_state(module, state: dict) -> None:
    from peft.utils import set_peft_model_state_dict

    if getattr(module, "peft_config", None):
        set_peft_model_state_dict(module, state)
        return
    own = {name.replace(".default", ""): name for name, _ in module.named_parameters()
           if "lora_" in name}
    module.load_state_dict({own[k]: v for k, v in state.items()}, strict=False)


def switch_adapters(modules, on: bool) -> None:
    """Every LoRA layer of ``modules`` on or off (diffusers' and peft-injected alike)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in modules:
        for layer in module.modules():
            if isinstance(layer, BaseTunerLayer):
                layer.enable_adapters(on)


def save_lora(run: LoraRun, out: Path, recipe: LoraRecipe, step: int, dataset_size: int,
              reg_size: int = 0) -> Path:
    """A diffusers-format LoRA file (what the pipeline's ``save_lora_weights`` writes, or the
    same ``transformer.``-prefixed keys where the pipeline has no loader), re-written with
    ss_* metadata in its header."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    family, pipe = run.family, run.pipe
    layers = {family.denoiser_name: folded_state(run.denoiser),
              **{name: folded_state(getattr(pipe, name)) for name in run.encoders}}
    path = out / WEIGHT_NAME
    if hasattr(type(pipe), "save_lora_weights"):
        type(pipe).save_lora_weights(out, weight_name=WEIGHT_NAME,
                                     **{f"{name}_lora_layers": state
                                        for name, state in layers.items()})
        with safe_open(path, "pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
            header = handle.metadata() or {}
    else:
        tensors = {f"{name}.{key}": value.contiguous() for name, state in layers.items()
                   for key, value in state.items()}
        header = {}
    metadata = {**header, "format": "pt", "ss_base_model": recipe.model,
                "ss_network_dim": str(recipe.rank), "huajia_family": family.name,
                "ss_network_alpha": str(recipe.alpha), "ss_steps": str(step),
                "huajia_alpha_folded": "alpha / rank is folded into lora_B: load at scale 1",
                "ss_learning_rate": str(recipe.lr), "ss_num_train_images": str(dataset_size),
                "ss_num_reg_images": str(reg_size),
                "ss_prior_loss_weight": str(recipe.prior_loss_weight),
                "huajia_prior_target": recipe.prior_target,
                "ss_min_snr_gamma": str(recipe.min_snr_gamma),
                "ss_text_encoder_lr": str(recipe.text_encoder_lr or recipe.lr),
                "ss_conv_dim": str(run.conv_rank), "ss_conv_alpha": str(recipe.conv_alpha),
                "ss_seed": str(recipe.seed), "ss_mixed_precision": recipe.precision,
                "ss_train_text_encoder": str(bool(run.encoders)),
                "ss_resolution": str(run.side),
                "ss_batch_size": str(recipe.batch), "ss_lr_scheduler": recipe.lr_scheduler,
                "ss_lr_warmup_steps": str(recipe.lr_warmup_steps),
                "huajia_new_words": json.dumps(recipe.new_words, ensure_ascii=False),
                "huajia_new_word_init": recipe.new_word_init or "",
                "ss_masked_loss": str(recipe.mask_weight > 1),
                "huajia_mask_weight": str(recipe.mask_weight),
                "huajia_ema_decay": str(recipe.ema_decay),
                "huajia_recipe": json.dumps(asdict(recipe))}
    save_file(tensors, path, metadata=metadata)
    return path


class LoraRun:
    """One run's model side: the pipeline, its family, the denoiser and the text encoders
    that train, each caption's denoiser call, and what the denoiser should predict."""

    def __init__(self, engine, recipe: LoraRecipe):
        self.engine, self.pipe, self.family = engine, engine.pipe, engine.family
        self.denoiser = self.family.denoiser(self.pipe)
        self.side = recipe.resolution or engine.native_size
        self.family.check_size(self.pipe, (self.side, self.side))
        self.encoders = _text_encoders(self.family, self.pipe, recipe)
        self.conv_rank = recipe.conv_rank if self.family.denoiser_name == "unet" else 0
        self.recipe = recipe
        self.sized: dict[tuple[int, int], tuple[CaptionCalls, object]] = {}  # per bucket (W, H)
        self.calls, self.objective = self.at((self.side, self.side))
        self.buckets = bucket_sizes(self.family, self.pipe, self.side) if recipe.buckets else None

    def at(self, size: tuple[int, int]) -> tuple[CaptionCalls, object]:
        """The captions' denoiser calls and the objective for (W, H) pictures (position ids,
        time ids and a flow model's shift depend on the size)."""
        if size not in self.sized:
            recipe = self.recipe
            self.sized[size] = (
                CaptionCalls(self.pipe, self.family, size, grad=bool(self.encoders or recipe.new_words)),
                objective_for(self.family, self.pipe, size, recipe.min_snr_gamma,
                              recipe.timestep_density, recipe.loss_weighting))
        return self.sized[size]

    def size_of(self, latents: torch.Tensor) -> tuple[int, int]:
        scale = self.family.vae_scale(self.pipe)
        return latents.shape[-1] * scale, latents.shape[-2] * scale

    def text_modules(self) -> list:
        return [getattr(self.pipe, name) for name in self.encoders]

    def predict(self, denoiser, latents: torch.Tensor, timesteps: torch.Tensor,
                captions: list[str], batched: bool = True) -> torch.Tensor:
        """The denoiser's prediction, (B, C, h, w): the captions' calls in one batch where
        they stack, else one call per picture."""
        family, pipe = self.family, self.pipe
        calls = self.at(self.size_of(latents))[0]
        batch = stacked([calls(c) for c in captions]) if batched else None
        if batch is not None:
            raw = batch.run(denoiser, family.training_latents(pipe, latents),
                            family.training_time(pipe, timesteps))
            return family.training_prediction(pipe, raw, latents)
        out = []
        for i, caption in enumerate(captions):
            z = latents[i:i + 1]
            raw = calls(caption).run(denoiser, family.training_latents(pipe, z),
                                          family.training_time(pipe, timesteps[i:i + 1]))
            out.append(family.training_prediction(pipe, raw, z))
        return torch.cat(out)

    @torch.no_grad()
    def base_prediction(self, latents: torch.Tensor, timesteps: torch.Tensor,
                        captions: list[str]) -> torch.Tensor:
        """What the model predicts with every adapter switched off (the prior to preserve)."""
        modules = [self.denoiser, *self.text_modules()]
        switch_adapters(modules, False)
        try:
            return self.predict(self.denoiser, latents, timesteps, captions)
        finally:
            switch_adapters(modules, True)


def _text_encoders(family, pipe, recipe: LoraRecipe) -> tuple[str, ...]:
    """The text encoders that get a LoRA: the family's CLIPs unless the recipe says no; a
    text-encoder LoRA asked of a family without CLIP is refused in one line."""
    clips = family.clip_text_encoders(pipe)
    if recipe.train_text_encoder and not clips:
        raise HuajiaError(f"{family.label}'s text encoder is not CLIP (T5, ChatGLM, Gemma, Qwen "
                          "or Llama): huajia trains no LoRA on it; pass --no-train-text-encoder")
    if recipe.new_words and clips != ("text_encoder",):
        raise HuajiaError(f"new words are trained on one CLIP text encoder (SD 1.x/2.x), not "
                          f"on {family.label}; drop --new-words")
    return clips if recipe.train_text_encoder is not False else ()


def train_lora(recipe: LoraRecipe, resume: bool = False,
               progress: Callable[[int, int, float], None] | None = None) -> Path:
    from accelerate import Accelerator
    from diffusers.optimization import get_scheduler

    from huajia.drawing import check_font_for
    from huajia.engine.engine import Engine

    check_font_for(*recipe.sample_prompts)  # the sample grids, before any compute
    check_precision(recipe.precision)
    out = Path(recipe.out)
    out.mkdir(parents=True, exist_ok=True)
    # the device from accelerate; precision ours (its state is one per process, so a second
    # run in another precision could not change it): autocast, and fp16's loss scaling
    accelerator = Accelerator(mixed_precision="no")
    torch.manual_seed(recipe.seed)
    engine = Engine(recipe.model, device=str(accelerator.device), split_batch=False, trace=False,
                    family=recipe.family)
    if engine.family.lora_loader is None:
        raise HuajiaError(f"{engine.family.label} takes no LoRA files, so huajia trains none")
    if recipe.vae:
        _swap_vae(engine.pipe, recipe.vae)
    run = LoraRun(engine, recipe)
    pipe, denoiser = run.pipe, run.denoiser
    sets = [_encoded_set(run, recipe.data, recipe.center_crop, run.buckets)]
    if recipe.mask_weight > 1 and all(bool((masks == 1).all()) for masks in sets[0][1]):
        raise HuajiaError(f"--mask-weight {recipe.mask_weight:g} needs alpha masks, but no image "
                          f"in '{recipe.data}' has an alpha channel; add them (huajia world "
                          "dataset --alpha-mask) or drop --mask-weight")
    if recipe.reg_data:
        sets.append(_encoded_set(run, recipe.reg_data, recipe.center_crop))
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.requires_grad_(False)
    words = NewWords(pipe, recipe.new_words, recipe.new_word_init) if recipe.new_words else None
    _add_adapter(denoiser, _denoiser_config(recipe, run))
    for encoder in run.text_modules():
        _add_adapter(encoder, _text_config(recipe))
    if recipe.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    groups = [{"params": [p for p in denoiser.parameters() if p.requires_grad]},
              {"params": [p for m in run.text_modules() for p in m.parameters() if p.requires_grad],
               "lr": recipe.text_encoder_lr or recipe.lr}]
    if words:  # the embedding table is trainable, but no row may decay
        groups[1]["params"] = [p for p in groups[1]["params"] if p is not words.table()]
        groups.append({"params": words.parameters(), "weight_decay": 0.0,
                       "lr": recipe.new_word_lr or recipe.lr})
    params = [p for group in groups for p in group["params"]]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=recipe.lr,
                                  weight_decay=1e-4)
    trained, optimizer = accelerator.prepare(denoiser, optimizer)
    schedule = get_scheduler(recipe.lr_scheduler, optimizer,
                             num_warmup_steps=recipe.lr_warmup_steps,
                             num_training_steps=recipe.steps)
    ema = [p.detach().clone() for p in params] if recipe.ema_decay else []
    step, losses = _resume(out, resume, run, optimizer, schedule, words, ema)
    scaler = torch.amp.GradScaler(accelerator.device.type, enabled=recipe.precision == "fp16")
    rng = np.random.default_rng([recipe.seed, step])
    generator = torch.Generator().manual_seed(recipe.seed * 100_003 + step)
    start = time.perf_counter()
    denoiser.train()
    while step < recipe.steps:
        with autocast(recipe.precision, accelerator.device):
            loss = _batch_loss(run, trained, sets, recipe, rng, generator)
        accelerator.backward(scaler.scale(loss))
        scaler.unscale_(optimizer)
        accelerator.clip_grad_norm_(params, 1.0)
        scaler.step(optimizer)
        scaler.update()
        if words:
            words.restore_old_rows()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if ema:
            ema_update(ema, params, recipe.ema_decay, step)
        step += 1
        losses.append(loss.item())
        if progress:
            progress(step, recipe.steps, losses[-1])
        if recipe.sample_every and (step % recipe.sample_every == 0 or step == recipe.steps):
            _checkpoint(out, run, optimizer, schedule, step, losses, words, ema)
            if recipe.sample_prompts:
                _samples(run, recipe, step, out)
    if ema:  # the averaged weights are the ones saved
        with torch.no_grad():
            for param, average in zip(params, ema, strict=True):
                param.copy_(average)
    path = save_lora(run, out, recipe, step, sum(len(z) for z in sets[0][0]),
                     sum(len(z) for z in sets[1][0]) if len(sets) > 1 else 0)
    if words:
        words.save(embeddings_path(path))
    loss_curve(losses).save(out / "loss.png")
    (out / "training.json").write_text(json.dumps(
        {"recipe": asdict(recipe), "steps": step, "seconds_this_run": time.perf_counter() - start,
         "family": run.family.name, "side": run.side, "text_encoders": list(run.encoders),
         "buckets": {f"{z.shape[-1] * run.family.vae_scale(run.pipe)}x"
                     f"{z.shape[-2] * run.family.vae_scale(run.pipe)}": len(z) for z in sets[0][0]},
         "final_loss": float(np.mean(losses[-20:])), "device": str(accelerator.device)},
        indent=1))
    return path


def _swap_vae(pipe, folder: str) -> None:
    """The model's VAE replaced by the one in ``folder`` (e.g. the SDXL fp16-fix VAE)."""
    from diffusers import AutoencoderKL

    try:
        vae = AutoencoderKL.from_pretrained(folder)
    except (OSError, ValueError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise HuajiaError(f"--vae '{folder}' is not a diffusers VAE folder ({reason})") from error
    pipe.vae = vae.to(pipe.vae.device, pipe.vae.dtype)


def _add_adapter(module, config) -> None:
    if hasattr(module, "add_adapter"):
        module.add_adapter(config)
        return
    from peft import inject_adapter_in_model  # a model without diffusers' adapter methods

    inject_adapter_in_model(config, module)
    for name, param in module.named_parameters():
        param.requires_grad_("lora_" in name)


def _text_config(recipe: LoraRecipe):
    from peft import LoraConfig

    return LoraConfig(r=recipe.rank, lora_alpha=recipe.alpha, init_lora_weights="gaussian",
                      target_modules=TEXT_TARGETS)


def _denoiser_config(recipe: LoraRecipe, run: LoraRun):
    from peft import LoraConfig

    targets, ranks, alphas = run.family.training_targets(run.pipe), {}, {}
    if run.conv_rank:
        targets += UNET_CONV_TARGETS
        ranks = {name: run.conv_rank for name in UNET_CONV_TARGETS}
        alphas = {name: recipe.conv_alpha for name in UNET_CONV_TARGETS}
    return LoraConfig(r=recipe.rank, lora_alpha=recipe.alpha, init_lora_weights="gaussian",
                      target_modules=targets, rank_pattern=ranks, alpha_pattern=alphas)


def _encoded_set(run: LoraRun, folder: str, crop: bool, buckets: list | None = None
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[list[list[str]]]]:
    """A folder's latents (the VAE is frozen, so encode once; the family's scale, shift or
    mean/std), its masks at latent size (the share of each latent pixel's area that is
    subject) and captions: one group per picture size (one without ``buckets``)."""
    images, masks, captions = _load_examples(folder, run.side, crop, buckets)
    groups: dict[tuple, list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(image.shape, []).append(i)
    latents, pooled, texts = [], [], []
    for members in groups.values():
        batch = torch.from_numpy(np.stack([images[i] for i in members])).permute(0, 3, 1, 2)
        z = torch.cat([run.family.to_latents(run.pipe, batch[i:i + 16]).float()
                       for i in range(0, len(batch), 16)])
        alpha = torch.from_numpy(np.stack([masks[i] for i in members]))[:, None].to(z.device)
        latents.append(z)
        pooled.append(F.adaptive_avg_pool2d(alpha, z.shape[-2:]))
        texts.append([captions[i] for i in members])
    return latents, pooled, texts


def _batch_loss(run: LoraRun, denoiser, sets: list, recipe: LoraRecipe,
                rng: np.random.Generator, generator: torch.Generator) -> torch.Tensor:
    """The denoising loss on one batch: the concept's pictures, plus reg pictures (weighted by
    ``prior_loss_weight``) filling half the batch when there are any."""
    sizes = [recipe.batch] if len(sets) == 1 else [recipe.batch - recipe.batch // 2,
                                                   recipe.batch // 2]
    latents, masks, texts = [], [], []
    for (groups, group_masks, group_captions), size in zip(sets, sizes, strict=True):
        counts = np.array([len(z) for z in groups], dtype=float)
        group = int(rng.choice(len(groups), p=counts / counts.sum())) if len(groups) > 1 else 0
        z, mask, captions = groups[group], group_masks[group], group_captions[group]
        picks = torch.from_numpy(rng.integers(len(z), size=size))
        latents.append(z[picks])
        masks.append(mask[picks])
        texts += ["" if rng.random() < recipe.caption_dropout else
                  captions[i][int(rng.integers(len(captions[i])))] for i in picks.tolist()]
    z = torch.cat(latents)
    noise = torch.randn(z.shape, generator=generator).to(z.device, z.dtype)
    noised = run.at(run.size_of(z))[1].noised(z, noise, generator)
    target = noised.target
    if len(sizes) == 2 and recipe.prior_target == "base":
        reg = slice(sizes[0], None)
        target = torch.cat([target[:sizes[0]], run.base_prediction(
            noised.latents[reg], noised.timesteps[reg], texts[sizes[0]:]).to(target.dtype)])
    pred = run.predict(denoiser, noised.latents, noised.timesteps, texts)
    errors = F.mse_loss(pred.float(), target.float(), reduction="none")
    errors = (errors * pixel_weights(torch.cat(masks), recipe.mask_weight)).mean(dim=(1, 2, 3))
    errors = errors * noised.weights.float()
    loss = errors[:sizes[0]].mean()
    if len(sizes) == 2:
        loss = loss + recipe.prior_loss_weight * errors[sizes[0]:].mean()
    return loss


def pixel_weights(masks: torch.Tensor, mask_weight: float) -> torch.Tensor:
    """Per-pixel loss weights: masked pixels weigh ``mask_weight`` times the rest, normalised
    to mean 1 per picture so the loss keeps its scale (all ones where nothing is masked)."""
    raw = 1.0 + (mask_weight - 1.0) * masks
    return raw / raw.mean(dim=(1, 2, 3), keepdim=True)


def _checkpoint(out: Path, run: LoraRun, optimizer, schedule, step: int, losses: list[float],
                words: NewWords | None, ema: list[torch.Tensor]) -> None:
    state = {"denoiser": adapter_state(run.denoiser), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "step": step, "losses": losses,
             "text": {name: adapter_state(getattr(run.pipe, name)) for name in run.encoders}}
    if words:
        state["new_words"] = words.vectors()
    if ema:
        state["ema"] = ema
    (out / "checkpoints").mkdir(exist_ok=True)
    tmp = out / "checkpoints" / "lora.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(out / "checkpoints" / "lora.pt")


def _resume(out: Path, resume: bool, run: LoraRun, optimizer, schedule, words: NewWords | None,
            ema: list[torch.Tensor]) -> tuple[int, list[float]]:
    path = out / "checkpoints" / "lora.pt"
    if not resume or not path.exists():
        return 0, []
    state = torch.load(path, map_location="cpu", weights_only=False)
    _load_adapter_state(run.denoiser, state["denoiser"])
    for name, saved in state.get("text", {}).items():
        _load_adapter_state(getattr(run.pipe, name), saved)
    if words and "new_words" in state:
        words.load_vectors(state["new_words"])
    optimizer.load_state_dict(state["optimizer"])
    if "schedule" in state:
        schedule.load_state_dict(state["schedule"])
    for average, saved in zip(ema, state.get("ema", ema), strict=True):
        average.copy_(saved)
    return state["step"], state["losses"]


def _samples(run: LoraRun, recipe: LoraRecipe, step: int, out: Path) -> None:
    from huajia.drawing import Tile, captioned_grid
    from huajia.engine.request import GenerationRequest

    run.denoiser.eval()
    tiles = [Tile(run.engine.generate(GenerationRequest(p, seed=recipe.seed + k, steps=20)
                                      ).images[0], (p,))
             for k, p in enumerate(recipe.sample_prompts)]
    run.denoiser.train()
    (out / "samples").mkdir(exist_ok=True)
    captioned_grid(tiles, columns=min(4, len(tiles)), title=f"step {step}").save(
        out / "samples" / f"step_{step:05d}.png")


def loss_curve(losses: list[float], size: tuple[int, int] = (640, 320)) -> Image.Image:
    from PIL import ImageDraw

    from huajia.drawing import font

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    values = np.asarray(losses, dtype=float)
    window = max(1, len(values) // 50)
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    left, top, right, bottom = 50, 30, size[0] - 10, size[1] - 30
    low, high = float(values.min()), float(values.max()) or 1.0
    span = (high - low) or 1.0

    def point(i: int, v: float, n: int) -> tuple[float, float]:
        return (left + (right - left) * i / max(1, n - 1), bottom - (bottom - top) * (v - low) / span)

    draw.line([point(i, v, len(values)) for i, v in enumerate(values)], fill=(190, 200, 230))
    draw.line([point(i + window // 2, v, len(values)) for i, v in enumerate(smooth)],
              fill=(30, 70, 160), width=2)
    draw.rectangle((left, top, right, bottom), outline="black")
    draw.text((left, 8), f"LoRA training loss ({len(values)} steps)", fill="black", font=font(13))
    draw.text((4, top), f"{high:.3g}", fill="black", font=font(11))
    draw.text((4, bottom - 12), f"{low:.3g}", fill="black", font=font(11))
    return image


NAMED_RECIPES = ("diffsynth-kolors",)


def named_recipe(name: str) -> dict | None:
    """A built-in recipe's fields, or None. ``diffsynth-kolors`` is the seed's run of
    DiffSynth-Studio's ``train_kolors_lora.py`` (rank 16, alpha 4, to_q/k/v/out, 1024 px
    centre crops, gradient checkpointing, 16-bit mixed precision, one epoch of its 500 steps at
    batch 1 and lr 1e-4, plain MSE, no text-encoder LoRA); fp16 only where a GPU runs it."""
    if name != "diffsynth-kolors":
        return None
    return {"rank": 16, "alpha": 4.0, "conv_rank": 0, "train_text_encoder": False,
            "resolution": 1024, "center_crop": True, "gradient_checkpointing": True,
            "precision": "fp16" if torch.cuda.is_available() else "fp32", "lr": 1e-4,
            "batch": 1, "steps": 500, "min_snr_gamma": 0.0, "caption_dropout": 0.0}


def recipe_from_file(path: str | Path, **overrides) -> LoraRecipe:
    """A ``LoraRecipe`` from a YAML file of its field names (the experiments' knobs live there:
    prior_target, new_words, new_word_lr, new_word_init, ema_decay, caption_dropout, …), with
    ``overrides`` (the options given on the command line) on top."""
    import dataclasses

    import yaml

    named = named_recipe(str(path))
    try:
        data = named if named is not None else \
            yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise HuajiaError(f"cannot read the recipe '{path}': {error} (a YAML file of LoraRecipe "
                          f"fields, or a built-in recipe: {', '.join(NAMED_RECIPES)})") from error
    if not isinstance(data, dict):
        raise HuajiaError(f"the recipe '{path}' is not a mapping of LoraRecipe fields")
    data = canonical(LoraRecipe, data)  # older names (sample_prompt, text_encoder) too
    known = {f.name for f in dataclasses.fields(LoraRecipe)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise HuajiaError(f"the recipe '{path}' has unknown fields {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    for key in ("sample_prompts", "new_words"):
        if isinstance(data.get(key), list):
            data[key] = tuple(data[key])
    return LoraRecipe(**{**data, **overrides})
