"""The embedded model's card: a README.md in the model folder with the recipe, the wall time,
the hardware and the measured ShapesEval scores (huggingface model-card style)."""

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
- wall time: {total_min:.1f} min (VAE {vae_min:.1f}, latents {latents_min:.1f}, UNet + text
  encoder {unet_min:.1f})
- final UNet loss (min-SNR weighted v-prediction): {loss}
{decoder}

## ShapesEval
{evaluation}
"""


def _table(scores: dict) -> str:
    rows = ["| setting | overall | " + " | ".join(scores["tasks"]) + " |",
            "|---|---|" + "---|" * len(scores["tasks"])]
    rows.append(f"| {scores.get('setting', '')} | {scores['overall']:.3f} | "
                + " | ".join(f"{v:.3f}" for v in scores["tasks"].values()) + " |")
    return "\n".join(rows)


def _decoder_line(training: dict) -> str:
    refined = training.get("decoder_refinement")
    if not refined:
        return "- VAE decoder: not refined"
    return (f"- VAE decoder refined with the encoder frozen (`huajia train decoder`): "
            f"{refined['steps']} steps of batch {refined['batch']}, lr {refined['lr']}")


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
    timings = training["timings"]
    evaluation = "\n\n".join(_table(e) for e in evaluations) or "not measured"
    recipe = training["recipe"]
    command = (f"huajia train base --out DIR --seed {recipe['seed']} --scenes {recipe['n_scenes']}"
               f" --vae-steps {recipe['vae_steps']} --unet-steps {recipe['unet_steps']}")
    notes = "".join(f"\n> {note}\n" for note in training.get("notes", []))
    text = _TEMPLATE.format(
        command=command, notes=notes, folder=model_dir, architecture=architecture,
        recipe=json.dumps(training["recipe"], indent=1), hardware=training["hardware"],
        device=training["device"], total_min=timings["total_s"] / 60,
        vae_min=timings["vae_s"] / 60, latents_min=timings["latents_s"] / 60,
        unet_min=timings["unet_s"] / 60, loss=training.get("final_unet_loss"),
        decoder=_decoder_line(training), evaluation=evaluation)
    path = model_dir / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
