"""Write shapes-world datasets as Hugging Face imagefolders.

``metadata.jsonl`` rows: ``file_name``, ``text`` (English), ``text_zh``, ``spec`` (what the
captions say: a caption may leave out size, texture or background, so the model learns to cope
with prompts that do) and ``scene`` (every object with its true attributes and position).
Rows are seeded one by one, so the same seed gives the same dataset whatever the worker count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from huajia.errors import HuajiaError
from huajia.imagefolder import read_metadata  # noqa: F401 - the world's datasets are imagefolders
from huajia.world import captions, sampler, vocab
from huajia.world.render import check_side, render
from huajia.world.spec import Scene, SceneSpec

CHUNK = 256
# Chance that a caption leaves an attribute out (the spec then leaves it open too).
_DROP = {"size": 0.3, "texture_solid": 0.5, "texture": 0.1, "background": 0.5}


def described_spec(scene: Scene, rng: np.random.Generator, colour_drop: float = 0.0) -> SceneSpec:
    """The part of the scene a caption states: sometimes size, texture or background is left out.

    With ``colour_drop`` > 0 the caption names no colour at all with that chance, and otherwise
    leaves out each object's colour with a third of it, so prompts such as 'a star' or
    'a red circle and a square' are in the training distribution (0 draws nothing, so older
    captions stay exactly as they were)."""
    drop_all = colour_drop > 0 and rng.random() < colour_drop
    groups = []
    for group in scene.spec.groups:
        drop_texture = _DROP["texture_solid"] if group.texture == "solid" else _DROP["texture"]
        drop_colour = drop_all or (colour_drop > 0 and rng.random() < colour_drop / 3)
        groups.append(replace(
            group,
            size=None if rng.random() < _DROP["size"] else group.size,
            texture=None if rng.random() < drop_texture else group.texture,
            colour=None if drop_colour else group.colour))
    background = None if rng.random() < _DROP["background"] else scene.background
    return SceneSpec(tuple(groups), scene.spec.relations, background)


def _with_concept(scene: Scene, concept: str, rng: np.random.Generator, index: int) -> Scene:
    """``scene`` (a training scene) with one group turned into the held-out ``concept``, so the
    concept is the only new thing in the picture (DreamBooth-style: new subject, familiar
    context)."""
    groups = list(scene.spec.groups)
    k = int(rng.integers(len(groups)))
    field_name = "texture" if concept in vocab.ids(vocab.TEXTURES) else "shape"
    groups[k] = replace(groups[k], **{field_name: concept})
    spec = replace(scene.spec, groups=tuple(groups))
    return sampler.layout(spec, rng, index)


def make_example(index: int, seed: int, split: str, concept: str | None = None,
                 colour_drop: float = 0.0) -> tuple[Scene, SceneSpec, str, str]:
    """The scene, described spec and en/zh captions of row ``index`` (pure function of inputs).
    With ``concept`` (a held-out shape or texture, e.g. 'hexagon'), one group of a training
    scene becomes it and the captions always name it; captions still use training templates.
    ``colour_drop`` leaves colours out of captions as the base model's recipe does."""
    rng = np.random.default_rng([seed, index])
    scene = sampler.sample_scene(rng, split, seed=index)
    if concept:
        scene = _with_concept(scene, concept, rng, index)
    spec = described_spec(scene, rng, colour_drop)
    if concept in vocab.ids(vocab.TEXTURES):  # never drop the texture being taught
        spec = SceneSpec(tuple(replace(d, texture=g.texture) for d, g in
                               zip(spec.groups, scene.spec.groups, strict=True)),
                         spec.relations, spec.background)
    en_templates, zh_templates = captions.templates("en", split), captions.templates("zh", split)
    text = captions.caption(spec, en_templates[int(rng.integers(len(en_templates)))], rng)
    text_zh = captions.caption(spec, zh_templates[int(rng.integers(len(zh_templates)))], rng)
    return scene, spec, text, text_zh


def object_alpha(scene: Scene, concept: str | None, side: int,
                 margin: float = 1.15) -> Image.Image:
    """An alpha mask (kohya's alpha_mask convention) that is opaque on and just around the
    objects of ``concept`` (every object when ``concept`` is None) and transparent elsewhere,
    for masked-loss LoRA training."""
    alpha = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(alpha)
    for obj in scene.objects:
        if concept is None or concept in (obj.shape, obj.texture):
            r = obj.radius * margin * side
            draw.ellipse((obj.cx * side - r, obj.cy * side - r, obj.cx * side + r,
                          obj.cy * side + r), fill=255)
    return alpha


def _write_chunk(args: tuple) -> list[dict]:
    out, start, stop, seed, split, side, concept, colour_drop, alpha_mask = args
    rows = []
    for index in range(start, stop):
        scene, spec, text, text_zh = make_example(index, seed, split, concept, colour_drop)
        file_name = f"images/{index:07d}.png"
        image = render(scene, side)
        if alpha_mask:
            image.putalpha(object_alpha(scene, concept, side))
        image.save(os.path.join(out, file_name), compress_level=1)
        rows.append({"file_name": file_name, "text": text, "text_zh": text_zh,
                     "spec": spec.to_dict(), "scene": scene.to_dict()})
    return rows


def prepare_out_dir(out: str | Path) -> Path:
    """Create ``out`` (and parents) or explain in one line why it cannot be written."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".huajia-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise HuajiaError(f"cannot write to '{path}': {error.strerror or error}; "
                          "choose another --out") from error
    return path


def check_dataset_args(out: str | Path, n: int, split: str, side: int,
                       concept: str | None = None, colour_drop: float = 0.0) -> Path:
    """Validate a dataset request before any work starts; returns the ready output folder."""
    held_out = [c.id for c in (*vocab.SHAPES, *vocab.TEXTURES) if c.held_out]
    if concept is not None and concept not in held_out:
        raise HuajiaError(f"--concept '{concept}' is not a held-out concept; use one of "
                          f"{', '.join(held_out)}")
    if n < 1:
        raise HuajiaError(f"--n must be at least 1, got {n}")
    if not 0.0 <= colour_drop <= 1.0:
        raise HuajiaError(f"--colour-drop {colour_drop} is not a chance; pass a number in [0, 1]")
    if split not in ("train", "eval"):
        raise HuajiaError(f"unknown split '{split}'; use 'train' or 'eval'")
    check_side(side)
    return prepare_out_dir(out)


def write_dataset(out: str | Path, n: int, seed: int = 0, split: str = "train", side: int = 128,
                  workers: int | None = None, progress: Callable[[int], None] | None = None,
                  concept: str | None = None, colour_drop: float = 0.0,
                  alpha_mask: bool = False) -> Path:
    """Render ``n`` examples into the imagefolder ``out``; ``progress(k)`` is told each k done.
    ``concept`` makes a teaching set for a held-out shape or texture, ``colour_drop`` leaves
    colours out of captions (see make_example), ``alpha_mask`` marks the concept's objects
    (every object without a concept) in each picture's alpha channel, for masked-loss LoRA
    training."""
    path = check_dataset_args(out, n, split, side, concept, colour_drop)
    (path / "images").mkdir(exist_ok=True)
    jobs = [(str(path), start, min(start + CHUNK, n), seed, split, side, concept, colour_drop,
             alpha_mask) for start in range(0, n, CHUNK)]
    workers = workers or min(os.cpu_count() or 1, len(jobs))
    with open(path / "metadata.jsonl", "w", encoding="utf-8") as metadata:
        for rows in _run(jobs, workers):
            for row in rows:
                metadata.write(json.dumps(row, ensure_ascii=False) + "\n")
            if progress:
                progress(len(rows))
    return path


def _run(jobs: list[tuple], workers: int) -> Iterator[list[dict]]:
    if workers <= 1:
        yield from map(_write_chunk, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_write_chunk, jobs)
