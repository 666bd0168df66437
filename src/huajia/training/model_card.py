"""Model cards: a README.md in the model folder with the recipe, the wall time, the hardware and
the measured ShapesEval scores (huggingface model-card style) — the embedded model's card
(``write_model_card``) and an RL fine-tune's (``write_rl_card``)."""

from __future__ import annotations

import json
from pathlib import Path

_TEMPLATE = """---
library_name: diffusers
pipeline_tag: text-to-image
language: [en, zh]
tags: [huajia, shapes-world, stable-diffusion]
---
# huajia embedded model

A small text-to-image model trained from scratch by huajia's recipe on its procedural shapes
world (captions in English and Chinese). It loads in plain diffusers:

```python
from diffusers import StableDiffusionPipeline
pipe = StableDiffusionPipeline.from_pretrained("{folder}")
```

Reproduce it with `{command}` (seeded, resumable).
{notes}
## Architecture
{architecture}

## Recipe
```json
{recipe}
```

## Training
- hardware: {hardware} ({device})
{wall_time}
- final UNet loss (min-SNR weighted v-prediction): {loss}
{decoder}

{rl}
## ShapesEval
{evaluation}
"""


def _table(scores: dict) -> str:
    rows = ["| setting | overall | " + " | ".join(scores["tasks"]) + " |",
            "|---|---|" + "---|" * len(scores["tasks"])]
    rows.append(f"| {scores.get('setting', '')} | {scores['overall']:.3f} | "
                + " | ".join(f"{v:.3f}" for v in scores["tasks"].values()) + " |")
    return "\n".join(rows)


def evaluation_tables(evaluations: list[dict]) -> str:
    return "\n\n".join(_table(e) for e in evaluations) or "not measured"


def _rl_section(training: dict) -> str:
    """The RL fine-tune on top of the supervised recipe (``huajia train rl``), if any."""
    rl = training.get("rl")
    if not rl:
        return ""
    s = rl["summary"]
    return (f"\n## RL fine-tune\n`{rl_command(rl['recipe'])}` (model: the supervised model above)\n\n"
            f"- {rl['recipe']['method'].upper()} on the {_critic(rl['recipe'])} critic, {s['steps']} steps, "
            f"{rl['cpu_s'] / 60:.1f} CPU minutes on {rl['hardware']}\n"
            f"- reward {s['reward_first']:.3f} → {s['reward_last']:.3f}, pass rate {s['pass_first']:.3f} → "
            f"{s['pass_last']:.3f} (first → last tenth of the run)\n\n![reward curve](reward_curve.png)\n"
            f"```json\n{json.dumps(rl['recipe'], indent=1)}\n```\n")


def _decoder_line(training: dict) -> str:
    passes = decoder_passes(training)
    if not passes:
        return "- VAE decoder: not refined"
    described = "; then ".join(
        f"{p['steps']} steps of batch {p['batch']}, lr {p['lr']}"
        + (f", texture focus {p['texture_focus']}" if p.get("texture_focus") else "")
        for p in passes)
    return f"- VAE decoder refined with the encoder frozen (`huajia train decoder`): {described}"


def _minutes(timings: dict, key: str) -> float:
    return (timings.get(key) or 0.0) / 60


def _stages(timings: dict, vae: bool = True) -> str:
    """'VAE a, latents b, UNet + text encoder c' in minutes (a fine-tune has no VAE stage)."""
    parts = [("VAE", "vae_s")] if vae else []
    parts += [("latents", "latents_s"), ("UNet + text encoder", "unet_s")]
    return ", ".join(f"{name} {_minutes(timings, key):.1f}" for name, key in parts)


def _wall_time_lines(training: dict) -> str:
    """Stage times; a fine-tune also states what its starting model cost, so the total is true."""
    t = training["timings"]
    base = training.get("fine_tuned_from")
    if not base or not base.get("timings"):
        return f"- wall time: {_minutes(t, 'total_s'):.1f} min ({_stages(t)})"
    b = base["timings"]
    return (f"- fine-tune wall time: {_minutes(t, 'total_s'):.1f} min ({_stages(t, vae=False)})\n"
            f"- starting model: {_minutes(b, 'total_s'):.1f} min on {base.get('hardware')} "
            f"({_stages(b)}; recipe under `fine_tuned_from` in training.json)")


def _command(recipe: dict, out: str = "DIR") -> str:
    """The ``huajia train base`` command of one recipe."""
    command = f"huajia train base --out {out} --seed {recipe['seed']} --scenes {recipe['n_scenes']}"
    if recipe.get("init_from"):
        return (f"{command} --init-from {recipe['init_from']} --unet-steps "
                f"{recipe['unet_steps']} --unet-lr {recipe['unet_lr']} --colour-drop "
                f"{recipe.get('colour_drop', 0.0)}" + _relation_flags(recipe))
    return (f"{command} --vae-steps {recipe['vae_steps']} --unet-steps {recipe['unet_steps']}"
            f" --colour-drop {recipe.get('colour_drop', 0.0)}")


def _relation_flags(recipe: dict) -> str:
    share = recipe.get("relation_share", 0.0)
    flags = f" --relation-share {share}" if share else ""
    return flags + (" --mirror-pairs" if recipe.get("mirror_pairs") else "")


def decoder_passes(training: dict) -> list[dict]:
    """The decoder refinement passes on record (older records hold a single pass)."""
    passes = training.get("decoder_refinement") or []
    return [passes] if isinstance(passes, dict) else passes


def _rebuild_commands(training: dict) -> str:
    """The command(s) that rebuild the model: a fine-tune first rebuilds its starting model;
    decoder passes follow the run that trained the VAE (they never change the latents)."""
    recipe, base = training["recipe"], (training.get("fine_tuned_from") or {}).get("recipe")
    fine_tune = bool(recipe.get("init_from") and base)
    commands = [_command(base)] if fine_tune else [_command(recipe)]
    commands += [f"huajia train decoder DIR/model --steps {p['steps']} --lr {p['lr']}"
                 + (f" --texture-focus {p['texture_focus']}" if p.get("texture_focus") else "")
                 for p in decoder_passes(training)]
    if fine_tune:
        commands.append(_command({**recipe, "init_from": "DIR/model"}, out="DIR2"))
    return "`, then `".join(commands)


def write_model_card(model_dir: str | Path, evaluations: list[dict]) -> Path:
    """Write README.md from ``training.json`` plus ShapesEval summaries
    (each ``{"setting", "overall", "tasks"}``)."""
    model_dir = Path(model_dir)
    training = json.loads((model_dir / "training.json").read_text())
    size = training["recipe"]["size"]
    architecture = (f"- tokenizer: byte-level BPE, {size['vocab_size']} tokens (one token per "
                    f"Chinese character; unseen words fall back to byte pieces)\n"
                    f"- text encoder: CLIP text transformer, width {size['text_width']}, "
                    f"{size['text_layers']} layers\n"
                    f"- VAE: AutoencoderKL, channels {size['vae_channels']}, "
                    f"{size['latent_channels']} latent channels (8x downsampling)\n"
                    f"- UNet: UNet2DConditionModel, channels {size['unet_channels']}\n"
                    f"- scheduler: DDIM, v-prediction, zero-terminal-SNR betas, trailing steps")
    evaluation = evaluation_tables(evaluations)
    notes = "".join(f"\n> {note}\n" for note in training.get("notes", []))
    text = _TEMPLATE.format(
        command=_rebuild_commands(training), notes=notes, folder=model_dir, architecture=architecture,
        recipe=json.dumps(training["recipe"], indent=1), hardware=training["hardware"],
        device=training["device"], wall_time=_wall_time_lines(training),
        loss=training.get("final_unet_loss"),
        decoder=_decoder_line(training), evaluation=evaluation, rl=_rl_section(training))
    path = model_dir / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


_RL_CARD = """# RL fine-tune ({method}, {reward} critic)

`{command}`

Started from `{model}`; {steps} RL steps ({pictures} pictures), {cpu:.1f} CPU minutes
({wall:.1f} min wall) on {hardware}. Reward (mean critic credit, 0–1) {r0:.3f} → {r1:.3f};
pass rate {p0:.3f} → {p1:.3f} (first → last tenth of the run).

![reward curve](reward_curve.png)

## Recipe
```json
{recipe}
```

## ShapesEval (held-out prompts, plain generation at the default settings)
{evaluation}
"""


def _critic(recipe: dict) -> str:
    """The RL recipe's critic (records written before its rename call it "reward")."""
    return recipe.get("critic", recipe.get("reward"))


def rl_command(recipe: dict) -> str:
    """The ``huajia train rl`` command of one RL recipe."""
    parts = [f"huajia train rl --model {recipe['model']} --critic {_critic(recipe)} --method "
             f"{recipe['method']} --steps {recipe['steps']} --group-size {recipe['group_size']}"]
    parts.append(f"--lora-rank {recipe['lora_rank']}" if recipe.get("lora_rank") else "--full")
    parts.append(f"--prompts-per-step {recipe['prompts_per_step']} --sde-window "
                 f"{recipe['sde_window']} --train-timesteps {recipe['train_timesteps']} --eta "
                 f"{recipe['eta']:g}")
    if recipe.get("prompt_file"):
        parts.append(f"--prompts {recipe['prompt_file']}")
    if recipe.get("task_weights"):
        parts.append(f"--task-weights {recipe['task_weights']}")
    parts.append(f"--kl {recipe['kl']} --lr {recipe['lr']} --seed {recipe['seed']} --out OUT")
    return " ".join(parts)


def write_rl_card(folder: Path, record: dict, evaluations: list[dict]) -> Path:
    """README.md for an RL result (``record``: rl.json less its history); ``evaluations``:
    ShapesEval summaries ({setting, overall, tasks})."""
    training = folder / "training.json"
    if training.is_file() and "recipe" in json.loads(training.read_text()):
        return write_model_card(folder, evaluations)  # huajia's own model: its card gains an RL section
    recipe, s = record["recipe"], record["summary"]
    curve = folder.parent / "reward_curve.png"
    if not (folder / "reward_curve.png").exists() and curve.exists():
        (folder / "reward_curve.png").write_bytes(curve.read_bytes())
    text = _RL_CARD.format(method=recipe["method"].upper(), reward=_critic(recipe),
                           command=rl_command(recipe), model=recipe["model"], steps=s["steps"],
                           pictures=s["steps"] * recipe["prompts_per_step"] * recipe["group_size"],
                           cpu=record["cpu_s"] / 60, wall=record["wall_s"] / 60, hardware=record["hardware"],
                           r0=s["reward_first"], r1=s["reward_last"], p0=s["pass_first"], p1=s["pass_last"],
                           recipe=json.dumps(recipe, indent=1), evaluation=evaluation_tables(evaluations))
    path = folder / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
