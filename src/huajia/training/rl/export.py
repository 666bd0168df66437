"""What a finished RL run leaves: ``OUT/reward_curve.png``, ``OUT/rl.json`` (recipe, per-step
record, summary) and ``OUT/model`` (a diffusers pipeline folder) or ``OUT/lora`` (a LoRA in
diffusers' format), each with a card."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from huajia.drawing import line_chart
from huajia.engine.loading import resolve_model
from huajia.engine.lora import WEIGHT_NAME
from huajia.training.base import hardware
from huajia.training.components import make_portable


def reward_curve(history: list[dict], title: str):
    return line_chart({"reward (mean critic credit)": [r["reward"] for r in history],
                       "pass rate": [r["pass_rate"] for r in history]},
                      title, y_range=(0.0, 1.0), smooth=max(1, len(history) // 15))


def rl_record(run) -> dict:
    from huajia.training.rl.run import summary

    return {"recipe": run.recipe.to_dict(), "summary": summary(run.history), "cpu_s": run.cpu_s,
            "wall_s": run.wall_s, "hardware": hardware(), "device": str(run.policy.device)}


def rl_card_record(out: Path) -> dict:
    """The record ``write_card`` needs, read back from a finished run's rl.json."""
    data = json.loads((Path(out) / "rl.json").read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if k != "history"}


def export(run, out: Path):
    from huajia.training.rl.run import RLResult, write_json

    recipe, history = run.recipe, run.history
    out.mkdir(parents=True, exist_ok=True)
    record = rl_record(run)
    write_json(out / "rl.json", {**record, "history": history})
    curve = reward_curve(history, f"{recipe.method.upper()} on the {recipe.reward} critic: "
                                  f"{len(history)} steps, {run.cpu_s / 60:.0f} CPU min")
    curve.save(out / "reward_curve.png")
    if recipe.lora_rank:
        lora = _save_lora(run, out / "lora")
        write_card(lora.parent, record, [])
        return RLResult(out, None, lora, history)
    model_dir = out / "model"
    source = resolve_model(recipe.model)
    pipe = run.policy.pipe
    # huajia's models ship in fp16 (small files); other pipelines keep full precision
    pipe.to(torch.float16 if source.huajia_trained else torch.float32).save_pretrained(model_dir)
    if source.huajia_trained:
        make_portable(model_dir)
    previous = Path(source.location) / "training.json" if source.is_local else None
    training = json.loads(previous.read_text()) if previous and previous.is_file() else {}
    training["rl"] = record
    write_json(model_dir / "training.json", training)
    curve.save(model_dir / "reward_curve.png")
    write_card(model_dir, record, [])
    return RLResult(out, model_dir, None, history)


def _save_lora(run, folder: Path) -> Path:
    from diffusers import StableDiffusionPipeline
    from peft.utils import get_peft_model_state_dict

    folder.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=get_peft_model_state_dict(run.policy.unet), weight_name=WEIGHT_NAME)
    return folder / WEIGHT_NAME


_CARD = """# RL fine-tune ({method}, {reward} critic)

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


def command(recipe: dict) -> str:
    parts = [f"huajia train rl --model {recipe['model']} --reward {recipe['reward']} --method "
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


def write_card(folder: Path, record: dict, evaluations: list[dict]) -> Path:
    """README.md for an RL result; ``evaluations``: ShapesEval summaries ({setting, overall, tasks})."""
    from huajia.training.model_card import evaluation_tables, write_model_card

    training = folder / "training.json"
    if training.is_file() and "recipe" in json.loads(training.read_text()):
        return write_model_card(folder, evaluations)  # huajia's own model: its card gains an RL section
    recipe, s = record["recipe"], record["summary"]
    curve = folder.parent / "reward_curve.png"
    if not (folder / "reward_curve.png").exists() and curve.exists():
        (folder / "reward_curve.png").write_bytes(curve.read_bytes())
    text = _CARD.format(method=recipe["method"].upper(), reward=recipe["reward"], command=command(recipe),
                        model=recipe["model"], steps=s["steps"],
                        pictures=s["steps"] * recipe["prompts_per_step"] * recipe["group_size"],
                        cpu=record["cpu_s"] / 60, wall=record["wall_s"] / 60, hardware=record["hardware"],
                        r0=s["reward_first"], r1=s["reward_last"], p0=s["pass_first"], p1=s["pass_last"],
                        recipe=json.dumps(recipe, indent=1), evaluation=evaluation_tables(evaluations))
    path = folder / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
