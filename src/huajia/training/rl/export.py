"""What a finished RL run leaves: ``OUT/reward_curve.png``, ``OUT/rl.json`` (recipe, per-step
record, summary) and ``OUT/model`` (a diffusers pipeline folder) or ``OUT/lora`` (a LoRA in
diffusers' format), each with a card (written by training/model_card.py)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from huajia.drawing import line_chart
from huajia.engine.loading import resolve_model
from huajia.engine.lora import WEIGHT_NAME
from huajia.training.base import hardware
from huajia.training.components import make_portable
from huajia.training.model_card import write_rl_card
from huajia.training.rl.records import RLResult, summary, write_json


def reward_curve(history: list[dict], title: str):
    return line_chart({"reward (mean critic credit)": [r["reward"] for r in history],
                       "pass rate": [r["pass_rate"] for r in history]},
                      title, y_range=(0.0, 1.0), smooth=max(1, len(history) // 15))


def rl_record(run) -> dict:
    return {"recipe": run.recipe.to_dict(), "summary": summary(run.history), "cpu_s": run.cpu_s,
            "wall_s": run.wall_s, "hardware": hardware(), "device": str(run.policy.device)}


def rl_card_record(out: Path) -> dict:
    """The record ``write_rl_card`` needs, read back from a finished run's rl.json."""
    data = json.loads((Path(out) / "rl.json").read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if k != "history"}


def export(run, out: Path) -> RLResult:
    recipe, history = run.recipe, run.history
    out.mkdir(parents=True, exist_ok=True)
    record = rl_record(run)
    write_json(out / "rl.json", {**record, "history": history})
    curve = reward_curve(history, f"{recipe.method.upper()} on the {recipe.critic} critic: "
                                  f"{len(history)} steps, {run.cpu_s / 60:.0f} CPU min")
    curve.save(out / "reward_curve.png")
    if recipe.lora_rank:
        lora = _save_lora(run, out / "lora")
        write_rl_card(lora.parent, record, [])
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
    write_rl_card(model_dir, record, [])
    return RLResult(out, model_dir, None, history)


def _save_lora(run, folder: Path) -> Path:
    """The LoRA in diffusers' format, saved by the pipeline's own ``save_lora_weights`` (alpha
    equals rank: the weights paint as trained at scale 1)."""
    from peft.utils import get_peft_model_state_dict

    folder.mkdir(parents=True, exist_ok=True)
    pipe, family = run.policy.pipe, getattr(run.policy, "family", None)
    name = family.denoiser_name if family else "unet"
    type(pipe).save_lora_weights(folder, weight_name=WEIGHT_NAME,
                                 **{f"{name}_lora_layers": get_peft_model_state_dict(run.policy.unet)})
    return folder / WEIGHT_NAME
