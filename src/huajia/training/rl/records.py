"""What an RL run reports: ``RLResult`` (where its outputs went), ``summary`` (the reward curve in
a few numbers) and ``write_json``. Shared by run.py (which trains) and export.py (which writes the
results); it imports neither."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class RLResult:
    out: Path
    model_dir: Path | None  # the exported pipeline (full fine-tune)
    lora: Path | None  # the exported LoRA file
    history: list[dict]


def summary(history: list[dict]) -> dict:
    """First and last tenth of the run's reward and pass rate (the curve in two numbers each)."""
    k = max(1, len(history) // 10)
    mean = lambda rows, key: float(np.mean([r[key] for r in rows])) if rows else 0.0  # noqa: E731
    return {"steps": len(history), "reward_first": mean(history[:k], "reward"),
            "reward_last": mean(history[-k:], "reward"), "pass_first": mean(history[:k], "pass_rate"),
            "pass_last": mean(history[-k:], "pass_rate"),
            "cpu_minutes": (history[-1]["cpu_s"] / 60) if history else 0.0}


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
