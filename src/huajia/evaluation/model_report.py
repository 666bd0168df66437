"""One pass over ShapesEval that reports what a trained-against-the-critic model must show:
the verifier's scores, the second judge's (``second_judge``) on the same pictures, and the
diversity across seeds (mean pairwise distance of one prompt's pictures), plus a few pictures
for a before/after grid."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from PIL import Image

from huajia.evaluation.generators import ImageGenerator
from huajia.evaluation.prompts import TASKS, EvalPrompt
from huajia.evaluation.second_judge import judge
from huajia.evaluation.shapes_eval import ShapesEvalResult, run_shapes_eval

DIVERSITY_SIDE = 64  # pictures are compared at this size


def diversity(pictures: Sequence[Image.Image]) -> float:
    """Mean pairwise RMS distance (pixels in [0, 1]) between pictures of one prompt."""
    arrays = [np.asarray(p.convert("RGB").resize((DIVERSITY_SIDE, DIVERSITY_SIDE)), np.float32) / 255
              for p in pictures]
    pairs = list(combinations(arrays, 2))
    return float(np.mean([np.sqrt(((a - b) ** 2).mean()) for a, b in pairs])) if pairs else 0.0


@dataclass
class ModelReport:
    shapes: ShapesEvalResult
    second: dict[str, list[bool]] = field(default_factory=dict)  # task → second judge's verdicts
    spreads: list[float] = field(default_factory=list)  # per prompt
    samples: dict[str, Image.Image] = field(default_factory=dict)  # prompt id → first picture

    @property
    def second_tasks(self) -> dict[str, float]:
        return {t: float(np.mean(v)) for t, v in self.second.items()}

    @property
    def second_overall(self) -> float:
        scores = list(self.second_tasks.values())
        return float(np.mean(scores)) if scores else 0.0

    @property
    def diversity(self) -> float:
        return float(np.mean(self.spreads)) if self.spreads else 0.0

    def to_dict(self) -> dict:
        return {"overall": self.shapes.overall, "tasks": self.shapes.tasks, "by_lang": self.shapes.by_lang,
                "second_judge": self.second_overall, "second_judge_tasks": self.second_tasks,
                "diversity": self.diversity, "n_images": len(self.shapes.records)}


def report_model(generator: ImageGenerator, prompts: Sequence[EvalPrompt], images_per_prompt: int = 2,
                 side: int = 128, keep: Sequence[str] = (),
                 progress: Callable[[int], None] | None = None) -> ModelReport:
    """Judge ``generator`` on ``prompts`` with both judges; ``keep``: prompt ids whose first
    picture is kept for a grid. Seeds are ShapesEval's, so every model draws the same noise."""
    out = ModelReport(ShapesEvalResult(generator.name, images_per_prompt, side),
                      {t: [] for t in TASKS if any(p.task == t for p in prompts)})
    pictures: dict[int, list[Image.Image]] = {}

    def look(index: int, prompt: EvalPrompt, picture: Image.Image) -> None:
        out.second[prompt.task].append(judge(picture, prompt.spec))
        pictures.setdefault(index, []).append(picture)
        if prompt.id in keep and prompt.id not in out.samples:
            out.samples[prompt.id] = picture

    out.shapes = run_shapes_eval(generator, prompts, images_per_prompt, side, progress=progress,
                                 on_image=look)
    out.spreads = [diversity(pictures[i]) for i in sorted(pictures)]
    return out
