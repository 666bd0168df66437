"""Picture makers that ShapesEval can judge, behind one small protocol.

``oracle`` draws exactly what the prompt says (the renderer), ``oracle-perturbed`` the same after
the blur/JPEG/noise/hue damage of a generative model, ``random`` a random scene that ignores the
prompt. Real models (the embedded one, diffusers pipelines) implement the same protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from PIL import Image

from huajia.errors import HuajiaError
from huajia.world.parser import read_prompt
from huajia.world.perturb import perturb
from huajia.world.render import render
from huajia.world.sampler import sample_scene, scene_for


class ImageGenerator(Protocol):
    name: str

    def generate(self, prompts: Sequence[str], seeds: Sequence[int],
                 side: int) -> list[Image.Image]:
        """One picture per (prompt, seed) pair."""
        ...


class OracleGenerator:
    """The renderer itself: what a perfect model would draw."""

    def __init__(self, perturbed: bool = False):
        self.perturbed = perturbed
        self.name = "oracle-perturbed" if perturbed else "oracle"

    def generate(self, prompts: Sequence[str], seeds: Sequence[int],
                 side: int) -> list[Image.Image]:
        images = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            image = render(scene_for(read_prompt(prompt).spec, seed), side)
            images.append(perturb(image, seed) if self.perturbed else image)
        return images


class RandomGenerator:
    """A random scene of the world for every prompt: the floor any model must beat."""

    name = "random"

    def generate(self, prompts: Sequence[str], seeds: Sequence[int],
                 side: int) -> list[Image.Image]:
        return [render(sample_scene(np.random.default_rng(seed), "train", seed), side)
                for seed in seeds]


BUILTIN = {"oracle": lambda: OracleGenerator(False),
           "oracle-perturbed": lambda: OracleGenerator(True),
           "random": RandomGenerator}


def builtin_generator(name: str) -> ImageGenerator:
    if name not in BUILTIN:
        raise HuajiaError(f"unknown model '{name}'; use one of {', '.join(BUILTIN)} "
                          "or a diffusers pipeline directory")
    return BUILTIN[name]()
