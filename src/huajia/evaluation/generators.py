"""Picture makers that ShapesEval can judge, behind one small protocol.

``oracle`` draws exactly what the prompt says (the renderer), ``oracle-perturbed`` the same after
the blur/JPEG/noise/hue damage of a generative model, ``random`` a random scene that ignores the
prompt, ``oracle-vae[:MODEL]`` oracle pictures through a model's autoencoder. Real models (the
embedded one, diffusers pipelines) run through the engine behind the same protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from PIL import Image

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
    """The renderer itself: what a perfect base model would draw (what the prompt leaves open
    is filled from the base concepts, never the held-out hexagon/checkered)."""

    def __init__(self, perturbed: bool = False):
        self.perturbed = perturbed
        self.name = "oracle-perturbed" if perturbed else "oracle"

    def generate(self, prompts: Sequence[str], seeds: Sequence[int],
                 side: int) -> list[Image.Image]:
        images = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            image = render(scene_for(read_prompt(prompt).spec, seed, split="train"), side)
            images.append(perturb(image, seed) if self.perturbed else image)
        return images


class RandomGenerator:
    """A random scene of the world for every prompt: the floor any model must beat."""

    name = "random"

    def generate(self, prompts: Sequence[str], seeds: Sequence[int],
                 side: int) -> list[Image.Image]:
        return [render(sample_scene(np.random.default_rng(seed), "train", seed), side)
                for seed in seeds]


class VaeRoundTripGenerator:
    """Oracle pictures passed through a model's VAE (encode → decode): how faithful the
    autoencoder is, independent of the denoiser."""

    def __init__(self, pipe, name: str):
        self.vae = pipe.vae
        self.name = name

    def generate(self, prompts: Sequence[str], seeds: Sequence[int],
                 side: int) -> list[Image.Image]:
        import torch

        from huajia.engine.images import to_pil, to_tensor

        originals = OracleGenerator().generate(prompts, seeds, side)
        x = to_tensor(originals).to(self.vae.device, self.vae.dtype)
        with torch.no_grad():
            decoded = self.vae.decode(self.vae.encode(x).latent_dist.mode()).sample
        return to_pil(decoded)


class EngineGenerator:
    """Any diffusers pipeline (or the embedded model) through huajia's engine. Consecutive jobs
    with the same prompt and consecutive seeds become one request of n images; all requests of
    a call run as one micro-batch."""

    def __init__(self, engine, steps: int = 20, guidance: float = 5.0,
                 scheduler: str | None = None, guidance_rescale: float = 0.0,
                 loras: tuple = (), **fields):
        self.engine = engine
        self.steps, self.guidance, self.scheduler = steps, guidance, scheduler
        self.guidance_rescale, self.loras = guidance_rescale, loras
        self.fields = fields  # more GenerationRequest fields (hires fix, sharpen, upscaler, …)
        self.name = engine.source.name + (" + LoRA" if loras else "")

    def generate(self, prompts: Sequence[str], seeds: Sequence[int],
                 side: int) -> list[Image.Image]:
        from huajia.engine.request import GenerationRequest

        # a hires fix returns its base size × the scale: ask for the base that gives ``side``
        base = round(side / self.fields.get("hires_scale", 1.0) / 8) * 8
        requests = [GenerationRequest(
            prompt=prompt, seed=first_seed, n=count, steps=self.steps, guidance=self.guidance,
            scheduler=self.scheduler, guidance_rescale=self.guidance_rescale, width=base,
            height=base, loras=self.loras, **self.fields)
            for prompt, first_seed, count in _runs(prompts, seeds)]
        return [im for result in self.engine.generate_batch(requests) for im in result.images]


def _runs(prompts: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, int, int]]:
    """Group jobs into (prompt, first seed, count) runs of consecutive seeds."""
    runs: list[tuple[str, int, int]] = []
    for prompt, seed in zip(prompts, seeds, strict=True):
        if runs and runs[-1][0] == prompt and runs[-1][1] + runs[-1][2] == seed:
            runs[-1] = (prompt, runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((prompt, seed, 1))
    return runs


BUILTIN = {"oracle": lambda: OracleGenerator(False),
           "oracle-perturbed": lambda: OracleGenerator(True),
           "random": RandomGenerator}


def make_generator(name: str, family: str | None = None, load=None,
                   **engine_options) -> ImageGenerator:
    """A built-in picture maker by name, or any model the engine can load ('embedded', a
    diffusers folder, a hub id; ``family`` and ``load`` as ``Engine`` takes them)."""
    if name in BUILTIN:
        return BUILTIN[name]()
    from huajia.engine.engine import Engine
    from huajia.world.parser import unknown_words

    if name == "oracle-vae" or name.startswith("oracle-vae:"):
        model = name.partition(":")[2] or "embedded"
        return VaeRoundTripGenerator(Engine(model, family=family, load=load).pipe, name)
    engine = Engine(name, vocabulary=unknown_words, family=family, load=load)
    return EngineGenerator(engine, **engine_options)
