"""LoRA training on an image/caption folder, for any SD-style diffusers pipeline.

peft adapters on the UNet attention projections (to_q, to_k, to_v, to_out.0) and, optionally,
the text encoder; accelerate chooses device and precision. The result is
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
from huajia.imagefolder import read_metadata
from huajia.params import canonical
from huajia.training.components import ema_update, snr_loss_weights
from huajia.training.new_words import NewWords
from huajia.training.recipes import LoraRecipe

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
# kohya's LoCon: also the ResNet 3x3 convolutions, where a new shape's outline lives at
# the small latent sizes (attention only sees where things go, not their corners)
UNET_CONV_TARGETS = ["conv1", "conv2"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
def _load_examples(folder: str, side: int) -> tuple[list[np.ndarray], list[np.ndarray],
                                                   list[list[str]]]:
    """Images resized to ``side``, their alpha masks (all ones without an alpha channel; the
    colours are used as they are, not composited) and, per image, its captions (text and
    text_zh if present)."""
    images, masks, captions = [], [], []
    for row in read_metadata(folder):
        path = Path(folder) / row["file_name"]
        try:
            with Image.open(path) as image:
                has_alpha = image.mode in ("RGBA", "LA") or "transparency" in image.info
                # colour and alpha apart: an RGBA resize premultiplies, blacking out the
                # colours under alpha 0
                image = image.convert("RGBA" if has_alpha else "RGB")
                pixels = image.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
                alpha = (image.getchannel("A").resize((side, side), Image.Resampling.BICUBIC)
                         if has_alpha else None)
        except OSError as error:
            raise HuajiaError(f"cannot read '{path}' ({error}); curate the folder first "
                              "with 'huajia curate'") from error
        images.append(np.asarray(pixels, dtype=np.float32) / 127.5 - 1.0)
        masks.append(np.ones((side, side), np.float32) if alpha is None
                     else np.asarray(alpha, dtype=np.float32) / 255.0)
        captions.append([row[k] for k in ("text", "text_zh") if row.get(k)])
    if not images:
        raise HuajiaError(f"'{folder}' has no images to train on")
    return images, masks, captions


def _lora_state(pipe, train_text: bool) -> dict:
    """peft-format keys (lora_A/lora_B), as diffusers loads them without conversion. The old
    diffusers format (lora.down/up) has no names for conv layers: a file mixing both formats
    loads with the attention layers silently dropped."""
    from peft.utils import get_peft_model_state_dict

    state = {"unet_lora_layers": get_peft_model_state_dict(pipe.unet)}
    if train_text:
        # not the embedding table that new words resized: those rows go to their own file
        state["text_encoder_lora_layers"] = get_peft_model_state_dict(
            pipe.text_encoder, save_embedding_layers=False)
    return state


def save_lora(pipe, out: Path, recipe: LoraRecipe, step: int, dataset_size: int,
              reg_size: int = 0) -> Path:
    """diffusers-format LoRA file, re-written with ss_* metadata in its header."""
    from safetensors.torch import load_file, save_file

    type(pipe).save_lora_weights(out, weight_name=WEIGHT_NAME,
                                 **_lora_state(pipe, recipe.train_text_encoder))
    path = out / WEIGHT_NAME
    tensors = load_file(path)
    metadata = {"format": "pt", "ss_base_model": recipe.model, "ss_network_dim": str(recipe.rank),
                "ss_network_alpha": str(recipe.alpha), "ss_steps": str(step),
                "ss_learning_rate": str(recipe.lr), "ss_num_train_images": str(dataset_size),
                "ss_num_reg_images": str(reg_size),
                "ss_prior_loss_weight": str(recipe.prior_loss_weight),
                "huajia_prior_target": recipe.prior_target,
                "ss_min_snr_gamma": str(recipe.min_snr_gamma),
                "ss_text_encoder_lr": str(recipe.text_encoder_lr or recipe.lr),
                "ss_conv_dim": str(recipe.conv_rank), "ss_conv_alpha": str(recipe.conv_alpha),
                "ss_seed": str(recipe.seed), "ss_mixed_precision": recipe.precision,
                "ss_train_text_encoder": str(recipe.train_text_encoder),
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


def train_lora(recipe: LoraRecipe, resume: bool = False,
               progress: Callable[[int, int, float], None] | None = None) -> Path:
    from accelerate import Accelerator
    from diffusers.optimization import get_scheduler
    from peft import LoraConfig

    from huajia.drawing import check_font_for
    from huajia.engine.engine import Engine

    check_font_for(*recipe.sample_prompts)  # the sample grids, before any compute
    out = Path(recipe.out)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(mixed_precision="no" if recipe.precision == "fp32" else recipe.precision)
    torch.manual_seed(recipe.seed)
    engine = Engine(recipe.model, device=str(accelerator.device))
    pipe = engine.pipe
    side = engine.native_size
    sets = [_encoded_set(pipe, recipe.data, side, accelerator.device)]
    if recipe.mask_weight > 1 and bool((sets[0][1] == 1).all()):
        raise HuajiaError(f"--mask-weight {recipe.mask_weight:g} needs alpha masks, but no image "
                          f"in '{recipe.data}' has an alpha channel; add them (huajia world "
                          "dataset --alpha-mask) or drop --mask-weight")
    if recipe.reg_data:
        sets.append(_encoded_set(pipe, recipe.reg_data, side, accelerator.device))
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
    words = NewWords(pipe, recipe.new_words, recipe.new_word_init) if recipe.new_words else None
    pipe.unet.add_adapter(_unet_config(recipe))
    if recipe.train_text_encoder:
        pipe.text_encoder.add_adapter(LoraConfig(r=recipe.rank, lora_alpha=recipe.alpha,
                                                 init_lora_weights="gaussian",
                                                 target_modules=TEXT_TARGETS))
    if recipe.gradient_checkpointing:
        pipe.unet.enable_gradient_checkpointing()
    groups = [{"params": [p for p in pipe.unet.parameters() if p.requires_grad]},
              {"params": [p for p in pipe.text_encoder.parameters() if p.requires_grad],
               "lr": recipe.text_encoder_lr or recipe.lr}]
    if words:  # the embedding table is trainable, but no row may decay
        groups[1]["params"] = [p for p in groups[1]["params"] if p is not words.table()]
        groups.append({"params": words.parameters(), "weight_decay": 0.0,
                       "lr": recipe.new_word_lr or recipe.lr})
    params = [p for group in groups for p in group["params"]]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=recipe.lr,
                                  weight_decay=1e-4)
    unet, text_encoder, optimizer = accelerator.prepare(pipe.unet, pipe.text_encoder, optimizer)
    schedule = get_scheduler(recipe.lr_scheduler, optimizer,
                             num_warmup_steps=recipe.lr_warmup_steps,
                             num_training_steps=recipe.steps)
    ema = [p.detach().clone() for p in params] if recipe.ema_decay else []
    step, losses = _resume(out, resume, pipe, optimizer, schedule, words, ema)
    rng = np.random.default_rng([recipe.seed, step])
    weights = _loss_weights(pipe.scheduler, recipe.min_snr_gamma).to(accelerator.device)
    start = time.perf_counter()
    while step < recipe.steps:
        with accelerator.autocast():
            loss = _batch_loss(pipe, unet, text_encoder, sets, recipe, rng, weights)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, 1.0)
        optimizer.step()
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
            _checkpoint(out, pipe, optimizer, schedule, step, losses, words, ema)
            if recipe.sample_prompts:
                _samples(engine, recipe, step, out)
    if ema:  # the averaged weights are the ones saved
        with torch.no_grad():
            for param, average in zip(params, ema, strict=True):
                param.copy_(average)
    path = save_lora(pipe, out, recipe, step, len(sets[0][0]),
                     len(sets[1][0]) if len(sets) > 1 else 0)
    if words:
        words.save(embeddings_path(path))
    loss_curve(losses).save(out / "loss.png")
    (out / "training.json").write_text(json.dumps(
        {"recipe": asdict(recipe), "steps": step, "seconds_this_run": time.perf_counter() - start,
         "final_loss": float(np.mean(losses[-20:])), "device": str(accelerator.device)}, indent=1))
    return path


def _unet_config(recipe: LoraRecipe):
    from peft import LoraConfig

    targets, ranks, alphas = list(UNET_TARGETS), {}, {}
    if recipe.conv_rank:
        targets += UNET_CONV_TARGETS
        ranks = {name: recipe.conv_rank for name in UNET_CONV_TARGETS}
        alphas = {name: recipe.conv_alpha for name in UNET_CONV_TARGETS}
    return LoraConfig(r=recipe.rank, lora_alpha=recipe.alpha, init_lora_weights="gaussian",
                      target_modules=targets, rank_pattern=ranks, alpha_pattern=alphas)


def _encoded_set(pipe, folder: str, side: int, device
                 ) -> tuple[torch.Tensor, torch.Tensor, list[list[str]]]:
    """A folder's latents (the VAE is frozen, so encode once), its masks at latent size (the
    share of each latent pixel's area that is subject) and captions."""
    images, masks, captions = _load_examples(folder, side)
    with torch.no_grad():
        batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(device)
        latents = torch.cat([pipe.vae.encode(batch[i:i + 16]).latent_dist.mode()
                             for i in range(0, len(batch), 16)]) * pipe.vae.config.scaling_factor
        masks = F.adaptive_avg_pool2d(torch.from_numpy(np.stack(masks))[:, None].to(device),
                                      latents.shape[-2:])
    return latents, masks, captions


def _loss_weights(scheduler, min_snr_gamma: float) -> torch.Tensor:
    """Per-timestep loss weights: Min-SNR-γ, or all ones when ``min_snr_gamma`` is 0."""
    if min_snr_gamma <= 0:
        return torch.ones(scheduler.config.num_train_timesteps)
    return snr_loss_weights(scheduler.alphas_cumprod,
                            scheduler.config.prediction_type == "v_prediction", min_snr_gamma)


def _batch_loss(pipe, unet, text_encoder, sets: list, recipe: LoraRecipe,
                rng: np.random.Generator, weights: torch.Tensor) -> torch.Tensor:
    """The denoising loss on one batch: the concept's pictures, plus reg pictures (weighted by
    ``prior_loss_weight``) filling half the batch when there are any; ``weights`` per timestep."""
    sizes = [recipe.batch] if len(sets) == 1 else [recipe.batch - recipe.batch // 2,
                                                   recipe.batch // 2]
    latents, masks, texts = [], [], []
    for (z, mask, captions), size in zip(sets, sizes, strict=True):
        picks = torch.from_numpy(rng.integers(len(z), size=size))
        latents.append(z[picks])
        masks.append(mask[picks])
        texts += ["" if rng.random() < recipe.caption_dropout else
                  captions[i][int(rng.integers(len(captions[i])))] for i in picks.tolist()]
    z = torch.cat(latents)
    ids = pipe.tokenizer(texts, padding="max_length", truncation=True,
                         max_length=pipe.tokenizer.model_max_length,
                         return_tensors="pt").input_ids.to(z.device)
    scheduler = pipe.scheduler
    noise = torch.randn_like(z)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(z),), device=z.device)
    target = (scheduler.get_velocity(z, noise, t)
              if scheduler.config.prediction_type == "v_prediction" else noise)
    noisy = scheduler.add_noise(z, noise, t)
    if len(sizes) == 2 and recipe.prior_target == "base":
        reg = slice(sizes[0], None)
        target = torch.cat([target[:sizes[0]],
                            _base_prediction(pipe, noisy[reg], t[reg], ids[reg])])
    pred = unet(noisy, t, text_encoder(ids)[0]).sample
    errors = F.mse_loss(pred.float(), target.float(), reduction="none")
    errors = (errors * pixel_weights(torch.cat(masks), recipe.mask_weight)).mean(dim=(1, 2, 3))
    errors = errors * weights[t]
    loss = errors[:sizes[0]].mean()
    if len(sizes) == 2:
        loss = loss + recipe.prior_loss_weight * errors[sizes[0]:].mean()
    return loss


def pixel_weights(masks: torch.Tensor, mask_weight: float) -> torch.Tensor:
    """Per-pixel loss weights: masked pixels weigh ``mask_weight`` times the rest, normalised
    to mean 1 per picture so the loss keeps its scale (all ones where nothing is masked)."""
    raw = 1.0 + (mask_weight - 1.0) * masks
    return raw / raw.mean(dim=(1, 2, 3), keepdim=True)


@torch.no_grad()
def _base_prediction(pipe, noisy: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """What the model predicts with every adapter switched off (the prior to preserve)."""
    adapted = [m for m in (pipe.unet, pipe.text_encoder) if getattr(m, "peft_config", None)]
    for module in adapted:
        module.disable_adapters()
    try:
        return pipe.unet(noisy, t, pipe.text_encoder(ids)[0]).sample
    finally:
        for module in adapted:
            module.enable_adapters()


def _checkpoint(out: Path, pipe, optimizer, schedule, step: int, losses: list[float],
                words: NewWords | None, ema: list[torch.Tensor]) -> None:
    from peft.utils import get_peft_model_state_dict

    state = {"unet": get_peft_model_state_dict(pipe.unet), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "step": step, "losses": losses}
    if getattr(pipe.text_encoder, "peft_config", None):
        state["text"] = get_peft_model_state_dict(pipe.text_encoder, save_embedding_layers=False)
    if words:
        state["new_words"] = words.vectors()
    if ema:
        state["ema"] = ema
    (out / "checkpoints").mkdir(exist_ok=True)
    tmp = out / "checkpoints" / "lora.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(out / "checkpoints" / "lora.pt")


def _resume(out: Path, resume: bool, pipe, optimizer, schedule, words: NewWords | None,
            ema: list[torch.Tensor]) -> tuple[int, list[float]]:
    from peft.utils import set_peft_model_state_dict

    path = out / "checkpoints" / "lora.pt"
    if not resume or not path.exists():
        return 0, []
    state = torch.load(path, map_location="cpu", weights_only=False)
    set_peft_model_state_dict(pipe.unet, state["unet"])
    if "text" in state:
        set_peft_model_state_dict(pipe.text_encoder, state["text"])
    if words and "new_words" in state:
        words.load_vectors(state["new_words"])
    optimizer.load_state_dict(state["optimizer"])
    if "schedule" in state:
        schedule.load_state_dict(state["schedule"])
    for average, saved in zip(ema, state.get("ema", ema), strict=True):
        average.copy_(saved)
    return state["step"], state["losses"]


def _samples(engine, recipe: LoraRecipe, step: int, out: Path) -> None:
    from huajia.drawing import Tile, captioned_grid
    from huajia.engine.request import GenerationRequest

    engine.pipe.unet.eval()
    tiles = [Tile(engine.generate(GenerationRequest(p, seed=recipe.seed + k, steps=20)).images[0],
                  (p,)) for k, p in enumerate(recipe.sample_prompts)]
    engine.pipe.unet.train()
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


def recipe_from_file(path: str | Path, **overrides) -> LoraRecipe:
    """A ``LoraRecipe`` from a YAML file of its field names (the experiments' knobs live there:
    prior_target, new_words, new_word_lr, new_word_init, ema_decay, caption_dropout, …), with
    ``overrides`` (the options given on the command line) on top."""
    import dataclasses

    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise HuajiaError(f"cannot read the recipe '{path}': {error}") from error
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
