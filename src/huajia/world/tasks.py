"""GenEval's task kinds as scene specs of the shapes world, for a split.

``eval`` (ShapesEval) uses a (shape, colour) pair that training never shows one time in three;
``train`` (RL prompts) never uses one. Neither uses the held-out concepts (hexagon, checkered):
those are reserved for teaching with a LoRA. Each maker is a pure function of its rng.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from huajia.world import vocab
from huajia.world.spec import ObjectGroup, Relation, SceneSpec

TASKS = ("single_object", "two_objects", "counting", "colors", "position", "color_attr",
         "texture_attr")
SHAPES = vocab.ids(vocab.SHAPES, include_held_out=False)
_COLOURS = vocab.ids(vocab.COLOURS)
_TEXTURES = vocab.ids(vocab.TEXTURES, include_held_out=False)
_HELD_OUT = sorted(vocab.HELD_OUT_COMBOS)


def pick(rng: np.random.Generator, options, k: int = 1) -> list:
    return [options[i] for i in rng.choice(len(options), size=k, replace=False)]


def _shape_colour(rng: np.random.Generator, split: str,
                  avoid_shape: str | None = None) -> tuple[str, str]:
    """A (shape, colour) pair; for 'eval', one time in three one that training never shows."""
    if split == "train":
        while True:
            shape = pick(rng, [s for s in SHAPES if s != avoid_shape])[0]
            colour = pick(rng, _COLOURS)[0]
            if (shape, colour) not in vocab.HELD_OUT_COMBOS:
                return shape, colour
    if rng.random() < 1 / 3:
        pairs = [p for p in _HELD_OUT if p[0] != avoid_shape]
        return pairs[int(rng.integers(len(pairs)))]
    shape = pick(rng, [s for s in SHAPES if s != avoid_shape])[0]
    return shape, pick(rng, _COLOURS)[0]


def _single_object(rng, split):
    return SceneSpec((ObjectGroup(pick(rng, SHAPES)[0]),))


def _two_objects(rng, split):
    a, b = pick(rng, SHAPES, 2)
    return SceneSpec((ObjectGroup(a), ObjectGroup(b)))


def _counting(rng, split):
    return SceneSpec((ObjectGroup(pick(rng, SHAPES)[0], count=int(rng.integers(2, 5))),))


def _colors(rng, split):
    shape, colour = _shape_colour(rng, split)
    return SceneSpec((ObjectGroup(shape, colour=colour),))


def _position(rng, split):
    a, b = pick(rng, SHAPES, 2)
    relation = pick(rng, vocab.ids(vocab.RELATIONS))[0]
    return SceneSpec((ObjectGroup(a), ObjectGroup(b)), (Relation(0, relation, 1),))


def _color_attr(rng, split):
    shape_a, colour_a = _shape_colour(rng, split)
    shape_b = pick(rng, [s for s in SHAPES if s != shape_a])[0]
    while True:
        colour_b = pick(rng, [c for c in _COLOURS if c != colour_a])[0]
        if split != "train" or (shape_b, colour_b) not in vocab.HELD_OUT_COMBOS:
            break
    return SceneSpec((ObjectGroup(shape_a, colour=colour_a), ObjectGroup(shape_b, colour=colour_b)))


def _texture_attr(rng, split):
    a, b = pick(rng, SHAPES, 2)
    texture_a, texture_b = pick(rng, _TEXTURES, 2)
    return SceneSpec((ObjectGroup(a, texture=texture_a), ObjectGroup(b, texture=texture_b)))


MAKERS: dict[str, Callable[[np.random.Generator, str], SceneSpec]] = {
    "single_object": _single_object, "two_objects": _two_objects, "counting": _counting,
    "colors": _colors, "position": _position, "color_attr": _color_attr,
    "texture_attr": _texture_attr,
}


def task_spec(task: str, rng: np.random.Generator, split: str = "eval") -> SceneSpec:
    return MAKERS[task](rng, split)
