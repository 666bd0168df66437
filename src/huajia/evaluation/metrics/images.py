"""Pictures for the metrics: a folder read (unreadable files skipped and counted), and the
world's oracle renders as the reference, with their features cached by a content hash."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from huajia.errors import HuajiaError

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
Progress = Callable[[int, int], None]


@dataclass
class Pictures:
    images: torch.Tensor  # uint8 (N, 3, side, side)
    names: list[str]
    skipped: list[str]  # unreadable files


def batch_tensor(pictures: Sequence[Image.Image], side: int) -> torch.Tensor:
    """Pictures as one uint8 (N, 3, side, side) batch for the feature networks (resized with
    Lanczos where needed); not ``engine.images.to_tensor``, the VAE's [-1, 1] floats."""
    arrays = [np.asarray(p.convert("RGB").resize((side, side), Image.LANCZOS) if p.size != (side, side)
                         else p.convert("RGB")) for p in pictures]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def read_folder(folder: str | Path, side: int = 128, what: str = "folder") -> Pictures:
    folder = Path(folder)
    if not folder.is_dir():
        raise HuajiaError(f"{what} '{folder}' is not a folder; pass a folder of PNG/JPEG/WebP pictures")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    pictures, names, skipped = [], [], []
    for path in files:
        try:
            with Image.open(path) as image:
                image.load()
                pictures.append(image.convert("RGB"))
            names.append(str(path.relative_to(folder)))
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError, ValueError):
            skipped.append(str(path.relative_to(folder)))
    if not pictures:
        raise HuajiaError(f"{what} '{folder}' has no readable pictures ({len(skipped)} unreadable); "
                          "pass a folder of PNG/JPEG/WebP files")
    return Pictures(batch_tensor(pictures, side), names, skipped)


def cache_dir() -> Path:
    root = os.environ.get("HUAJIA_CACHE") or Path.home() / ".cache" / "huajia"
    return Path(root) / "reference"


def cached_features(key: dict, compute: Callable[[], tuple[torch.Tensor, torch.Tensor | None]]):
    """Features (and logits) stored under a hash of ``key`` (extractor identity and the exact
    pictures' recipe), computed once."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir() / f"{digest}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        return saved["features"], saved.get("logits")
    features, logits = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"key": json.dumps(key), "features": features,
                **({"logits": logits} if logits is not None else {})}, tmp)
    tmp.replace(path)
    return features, logits


def world_renders(n: int, seed: int, side: int = 128, split: str = "train",
                  progress: Progress | None = None) -> torch.Tensor:
    """``n`` oracle renders of the world's ``split`` distribution (uint8)."""
    from huajia.world import sampler
    from huajia.world.render import render

    rng = np.random.default_rng([seed, 53])
    pictures = []
    for i in range(n):
        pictures.append(render(sampler.sample_scene(rng, split, seed=int(rng.integers(2**31))), side))
        if progress:
            progress(i + 1, n)
    return batch_tensor(pictures, side)


def oracle_for_specs(specs: Sequence, seeds: Sequence[int], side: int = 128,
                     progress: Progress | None = None) -> torch.Tensor:
    """The oracle's pictures of each spec, one per seed (the reference of a prompt set)."""
    from huajia.world.render import render
    from huajia.world.sampler import scene_for

    pictures = []
    for spec in specs:
        for seed in seeds:
            pictures.append(render(scene_for(spec, seed), side))
            if progress:
                progress(len(pictures), len(specs) * len(seeds))
    return batch_tensor(pictures, side)
