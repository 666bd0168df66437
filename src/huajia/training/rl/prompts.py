"""Where RL prompts come from: the world's training templates and (shape, colour) pairs, in the
shape of GenEval's tasks; or a user's prompt file. ShapesEval's held-out templates and pairs never
appear, so a gain on it is not a memorised answer. Prompts are a pure function of (seed, step),
so a resumed run sees the same ones."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from huajia.errors import HuajiaError
from huajia.world import captions
from huajia.world.parser import parse
from huajia.world.tasks import TASKS, task_spec


@dataclass(frozen=True)
class TrainPrompt:
    text: str
    task: str  # a world task, or "file"


def parse_task_weights(text: str | None) -> dict[str, float]:
    """``"position=3,counting=2"`` → weights of the world's tasks (the others weigh 1)."""
    weights = dict.fromkeys(TASKS, 1.0)
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in weights:
            raise HuajiaError(f"--task-weights: unknown task '{name}'; use {', '.join(TASKS)}")
        try:
            weights[name] = float(value)
        except ValueError:
            raise HuajiaError(f"--task-weights: '{item.strip()}' needs a number, as in position=3") from None
        if not 0 <= weights[name] <= 100:
            raise HuajiaError(f"--task-weights: {name}={value} must be between 0 and 100")
    if sum(weights.values()) <= 0:
        raise HuajiaError("--task-weights: at least one task needs a positive weight")
    return weights


def world_prompt(rng: np.random.Generator, weights: dict[str, float] | None = None) -> TrainPrompt:
    if weights is None:  # uniform over the tasks (the draw runs as before weights existed)
        task = TASKS[int(rng.integers(len(TASKS)))]
    else:
        p = np.array([weights[t] for t in TASKS])
        task = TASKS[int(rng.choice(len(TASKS), p=p / p.sum()))]
    spec = task_spec(task, rng, "train")
    frames = captions.templates("en" if rng.random() < 0.5 else "zh", "train")
    return TrainPrompt(captions.caption(spec, frames[int(rng.integers(len(frames)))], rng), task)


def read_prompt_file(path: str | Path, world_words: bool) -> tuple[TrainPrompt, ...]:
    """One prompt per line (blank lines and '#' comments skipped). ``world_words``: every word
    must be one the shapes world knows (its verifier is the reward)."""
    from huajia.engine.series import read_prompts

    prompts = read_prompts(path)
    if world_words:
        for number, prompt in enumerate(prompts, 1):
            unknown = parse(prompt).unparsed
            if unknown:
                raise HuajiaError(f"--prompts line {number} ({prompt!r}) has words the shapes world does "
                                  f"not know ({', '.join(unknown)}); the shapes reward cannot judge it — "
                                  "use words of the world or --reward clip/vlm")
    return tuple(TrainPrompt(p, "file") for p in prompts)


class PromptSource:
    """``prompts(step, k)``: the k prompts of RL step ``step`` (deterministic)."""

    def __init__(self, seed: int, fixed: tuple[TrainPrompt, ...] = (), task_weights: str | None = None):
        self.seed, self.fixed = seed, fixed
        self.weights = parse_task_weights(task_weights) if task_weights else None

    def prompts(self, step: int, k: int) -> list[TrainPrompt]:
        rng = np.random.default_rng([self.seed, 17, step])
        if self.fixed:
            return [self.fixed[int(i)] for i in rng.integers(len(self.fixed), size=k)]
        return [world_prompt(rng, self.weights) for _ in range(k)]
