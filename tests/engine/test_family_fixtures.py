"""The tiny family fixtures (tests/family_fixtures) are real checkpoints to plain diffusers:
each saved folder loads with DiffusionPipeline.from_pretrained as its family's pipeline class
and paints a finite, non-flat picture of an English and a Chinese prompt, the same for the
same seed, and its negative prompt reaches the picture."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from tests.family_fixtures import FAMILIES, NATIVE, PIPELINES, call_kwargs, prepare

MAX_FOLDER_BYTES = 5 * 2**20


def _size(folder) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _paint(pipe, name: str, prompt: str, negative: str | None, seed: int = 0) -> np.ndarray:
    extra = {"negative_prompt": negative} if negative is not None else {}
    images = pipe(prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(seed),
                  output_type="np", **extra, **call_kwargs(name)).images
    return images[0] * 255.0


def test_saved_folders_are_small(family_dirs):
    sizes = {name: _size(folder) for name, folder in family_dirs.items()}
    print("\nfolder sizes: " + ", ".join(f"{n} {b / 2**20:.1f} MB" for n, b in sizes.items()))
    assert all(size < MAX_FOLDER_BYTES for size in sizes.values()), sizes


@pytest.mark.parametrize("name", FAMILIES)
def test_family_fixture_paints(family_dirs, name):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(family_dirs[name])
    assert type(pipe).__name__ == PIPELINES[name]
    prepare(name, pipe)
    negative = ("ugly, blurry" if "negative_prompt" in inspect.signature(pipe.__call__).parameters
                else None)
    side = NATIVE[name]
    for prompt in ("a red circle", "两个红色圆形"):
        picture = _paint(pipe, name, prompt, negative)
        assert picture.shape == (side, side, 3)
        assert np.isfinite(picture).all(), (name, prompt)
        assert picture.std() > 1.0, (name, prompt, picture.std())  # not flat
        assert np.array_equal(picture, _paint(pipe, name, prompt, negative)), (name, prompt)
    if negative is not None:  # the negative prompt takes part (with the kwargs call_kwargs gives)
        other = _paint(pipe, name, "a red circle", "bad quality")
        assert not np.array_equal(other, _paint(pipe, name, "a red circle", negative)), name
