"""ShapesEval prompts: GenEval's tasks, rebuilt in the shapes world, in English and Chinese.

Every prompt uses a held-out (eval-split) caption template, and a third of the colour prompts use
a (shape, colour) pair the training split never shows. Only base concepts appear (no hexagon, no
checkered): those are reserved for teaching with a LoRA. The prompt list is a pure function of
its seed, so every model is judged on the same prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from huajia.errors import HuajiaError
from huajia.world import captions, vocab
from huajia.world.spec import ObjectGroup, SceneSpec
from huajia.world.tasks import SHAPES, TASKS, pick, task_spec


@dataclass(frozen=True)
class EvalPrompt:
    id: str
    task: str
    lang: str
    text: str
    spec: SceneSpec


def _bilingual(task: str, k: int, spec: SceneSpec,
               rng: np.random.Generator) -> list[EvalPrompt]:
    """``spec`` as an English and a Chinese prompt, each in a random held-out template."""
    out = []
    for lang in ("en", "zh"):
        frames = captions.templates(lang, "eval")
        frame = frames[int(rng.integers(len(frames)))]
        out.append(EvalPrompt(f"{task}-{k:03d}-{lang}", task, lang,
                              captions.caption(spec, frame, rng), spec))
    return out


def concept_prompts(concept: str, n_specs: int = 40, seed: int = 7,
                    stand_in: str | None = None) -> list[EvalPrompt]:
    """Held-out prompts (eval templates, en + zh) that each ask for the held-out ``concept``:
    the hexagon shape (with a colour, sometimes a count) or the checkered texture.
    ``stand_in`` (a known shape) takes the hexagon's place in the same specs and phrasings:
    what the base model scores on them is the ceiling a hexagon LoRA is measured against."""
    known = SHAPES
    if stand_in and (concept != "hexagon" or stand_in not in known):
        raise HuajiaError(f"a stand-in replaces the hexagon with a known shape ({', '.join(known)}); "
                          f"got '{stand_in}' for '{concept}'")
    prompts = []
    rng = np.random.default_rng([seed, 99])
    for k in range(n_specs):
        colour = pick(rng, vocab.ids(vocab.COLOURS))[0]
        count = int(rng.integers(1, 3))
        if concept == "hexagon":
            group = ObjectGroup("hexagon", count=count, colour=colour)
        else:
            group = ObjectGroup(pick(rng, SHAPES)[0], count=count, colour=colour,
                                texture=concept)
        if stand_in:  # phrased from a copy of the stream, so every later spec stays the same
            twin = np.random.default_rng()
            twin.bit_generator.state = rng.bit_generator.state
            prompts += _bilingual(concept, k, SceneSpec((replace(group, shape=stand_in),)), twin)
        own = _bilingual(concept, k, SceneSpec((group,)), rng)  # always: it moves the stream on
        prompts += [] if stand_in else own
    return prompts


def shapes_eval_prompts(specs_per_task: int = 50, seed: int = 2025) -> list[EvalPrompt]:
    """``specs_per_task`` specs per task, each as an English and a Chinese prompt.

    Small tasks (single_object has four shapes) repeat specs, phrased differently; each prompt
    still gets its own image seeds.
    """
    prompts = []
    for task in TASKS:
        rng = np.random.default_rng([seed, TASKS.index(task)])
        for k in range(specs_per_task):
            prompts += _bilingual(task, k, task_spec(task, rng, "eval"), rng)
    return prompts


def file_prompts(path) -> list[EvalPrompt]:
    """A prompt file (one per line, '#' comments) as prompts the verifier can judge: every word
    must be one the shapes world knows."""
    from huajia.engine.series import read_prompts
    from huajia.world.parser import parse

    prompts = []
    for number, text in enumerate(read_prompts(path), 1):
        parsed = parse(text)
        if parsed.unparsed or not parsed.spec.groups:
            raise HuajiaError(f"--prompts line {number} ({text!r}) has words the shapes world does not "
                              f"know ({', '.join(parsed.unparsed) or 'no objects'}); the verifier and the "
                              "oracle reference cannot judge it")
        prompts.append(EvalPrompt(f"file-{number:03d}", "file", parsed.lang, text, parsed.spec))
    return prompts
