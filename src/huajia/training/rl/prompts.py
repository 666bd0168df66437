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


def world_prompt(rng: np.random.Generator, tasks: tuple[str, ...] = TASKS) -> TrainPrompt:
    task = tasks[int(rng.integers(len(tasks)))]
    spec = task_spec(task, rng, "train")
    frames = captions.templates("en" if rng.random() < 0.5 else "zh", "train")
    return TrainPrompt(captions.caption(spec, frames[int(rng.integers(len(frames)))], rng), task)


def read_prompt_file(path: str | Path, world_words: bool) -> tuple[TrainPrompt, ...]:
    """One prompt per line (blank lines and '#' comments skipped). ``world_words``: every word
    must be one the shapes world knows (its verifier is the reward)."""
    path = Path(path)
    if not path.is_file():
        raise HuajiaError(f"--prompts '{path}' is not a file; give a text file with one prompt per line")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    prompts = [line for line in lines if line and not line.startswith("#")]
    if not prompts:
        raise HuajiaError(f"--prompts '{path}' has no prompts; write one prompt per line")
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

    def __init__(self, seed: int, fixed: tuple[TrainPrompt, ...] = ()):
        self.seed, self.fixed = seed, fixed

    def prompts(self, step: int, k: int) -> list[TrainPrompt]:
        rng = np.random.default_rng([self.seed, 17, step])
        if self.fixed:
            return [self.fixed[int(i)] for i in rng.integers(len(self.fixed), size=k)]
        return [world_prompt(rng) for _ in range(k)]
