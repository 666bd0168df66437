"""``huajia train features``: the world feature network (``huajia.scorers.world_features``)
trained on oracle renders of every split (held-out shapes, textures and pairs included, so the
features see what any model might paint). Seeded; the card records the recipe and accuracy."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from huajia.errors import HuajiaError
from huajia.scorers.world_features import FeatureNetConfig, WorldFeatureNet
from huajia.world import sampler, vocab
from huajia.world.render import render
from huajia.world.spec import Scene

Progress = Callable[[str, int, int], None]  # (stage, done, total)
CELL_HEADS = ("cell_shape", "cell_colour", "cell_texture", "cell_size")


@dataclass(frozen=True)
class FeatureRecipe:
    images: int = 12000
    holdout: int = 1000  # renders of other seeds, for the card's accuracy
    epochs: int = 6
    batch: int = 128
    lr: float = 2e-3
    seed: int = 0
    render_side: int = 128  # the embedded model's size; the net resizes to its own 64


def label_names() -> dict[str, list[str]]:
    shapes, colours = vocab.ids(vocab.SHAPES), vocab.ids(vocab.COLOURS)
    return {"cell_shape": ["none", *shapes], "cell_colour": ["none", *colours],
            "cell_texture": ["none", *vocab.ids(vocab.TEXTURES)],
            "cell_size": ["none", *vocab.ids(vocab.SIZES)],
            "background": list(vocab.ids(vocab.BACKGROUNDS)),
            "main": [f"{c} {s}" for s in shapes for c in colours]}


def scene_labels(scene: Scene, names: dict[str, list[str]], grid: int = 4) -> dict[str, np.ndarray]:
    """Per-cell classes (the object centred in each cell, the larger one when two are), the
    background and the largest object's (colour, shape)."""
    cells = {k: np.zeros((grid, grid), np.int64) for k in CELL_HEADS}
    radius = np.zeros((grid, grid))
    for obj in scene.objects:
        gx, gy = min(int(obj.cx * grid), grid - 1), min(int(obj.cy * grid), grid - 1)
        if obj.radius <= radius[gy, gx]:
            continue
        radius[gy, gx] = obj.radius
        for head, value in zip(CELL_HEADS, (obj.shape, obj.colour, obj.texture, obj.size), strict=True):
            cells[head][gy, gx] = names[head].index(value)
    largest = max(scene.objects, key=lambda o: o.radius)
    return {**cells, "background": np.int64(names["background"].index(scene.background)),
            "main": np.int64(names["main"].index(f"{largest.colour} {largest.shape}"))}


def render_set(n: int, seed: int, side: int, names: dict, progress: Progress | None = None,
               stage: str = "render") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``n`` oracle renders (uint8, resized to 64 as the net would) and their labels."""
    rng = np.random.default_rng([seed, 41])
    images, labels = [], {k: [] for k in names}
    for i in range(n):
        split = "eval" if rng.random() < 0.5 else "train"  # held-out concepts half the time
        scene = sampler.sample_scene(rng, split, seed=int(rng.integers(2**31)))
        picture = torch.from_numpy(np.asarray(render(scene, side))).permute(2, 0, 1)
        images.append(picture)
        for k, v in scene_labels(scene, names).items():
            labels[k].append(torch.as_tensor(v))
        if progress and (i + 1) % 100 == 0:
            progress(stage, i + 1, n)
    stacked = torch.stack(images).float() / 255
    small = F.interpolate(stacked, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
    return (small * 255).round().to(torch.uint8), {k: torch.stack(v) for k, v in labels.items()}


def _loss(out: dict, labels: dict) -> torch.Tensor:
    return sum(F.cross_entropy(out[k], labels[k]) for k in out)


def accuracy(net: WorldFeatureNet, images: torch.Tensor, labels: dict) -> dict[str, float]:
    """Per head; the cell heads on occupied cells only (empty cells are easy)."""
    net.eval()
    with torch.no_grad():
        out = {k: torch.cat(v) for k, v in _batched(net, images).items()}
    result = {}
    for k, logits in out.items():
        guess, truth = logits.argmax(1), labels[k]
        if k.startswith("cell_"):
            occupied = labels["cell_shape"] > 0
            result[k] = float((guess == truth)[occupied].float().mean())
        else:
            result[k] = float((guess == truth).float().mean())
    return result


def _batched(net: WorldFeatureNet, images: torch.Tensor, batch: int = 256) -> dict[str, list]:
    out: dict[str, list] = {}
    for start in range(0, len(images), batch):
        for k, v in net(images[start:start + batch]).items():
            out.setdefault(k, []).append(v)
    return out


def train_features(recipe: FeatureRecipe, out: str | Path, progress: Progress | None = None) -> dict:
    """Train, save the net to ``out`` with its card, and return the card's record."""
    from huajia.training.base import training_device

    if recipe.images < recipe.batch:
        raise HuajiaError(f"--images {recipe.images} is fewer than one batch ({recipe.batch}); "
                          "use at least 1000")
    device = training_device()
    torch.manual_seed(recipe.seed)
    names = label_names()
    started, cpu = time.perf_counter(), time.process_time()
    images, labels = render_set(recipe.images, recipe.seed, recipe.render_side, names, progress)
    test_images, test_labels = render_set(recipe.holdout, recipe.seed + 1000, recipe.render_side, names,
                                          progress, "render held-out")
    config = FeatureNetConfig(heads={k: len(v) for k, v in names.items()}, names=names)
    net = WorldFeatureNet(config).to(device)
    steps = recipe.epochs * (recipe.images // recipe.batch)
    optimizer = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.lr, total_steps=steps)
    generator = torch.Generator().manual_seed(recipe.seed)
    done = 0
    for _ in range(recipe.epochs):
        order = torch.randperm(recipe.images, generator=generator)
        for start in range(0, recipe.images - recipe.batch + 1, recipe.batch):
            index = order[start:start + recipe.batch]
            net.train()
            loss = _loss(net(images[index].to(device)), {k: v[index].to(device) for k, v in labels.items()})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            done += 1
            if progress and done % 10 == 0:
                progress(f"train (loss {loss.item():.3f})", done, steps)
    net = net.cpu()
    record = {"recipe": asdict(recipe), "steps": steps,
              "parameters": sum(p.numel() for p in net.parameters()),
              "holdout_accuracy": accuracy(net, test_images, test_labels),
              "wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}
    folder = net.save(out)
    (folder / "training.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    (folder / "README.md").write_text(card(record), encoding="utf-8")
    return record


def card(record: dict) -> str:
    r = record["recipe"]
    rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in record["holdout_accuracy"].items())
    return f"""# huajia world feature network

A small CNN ({record['parameters']:,} parameters, 64×64 input) trained on oracle renders of the
shapes world: on a 4×4 grid of cells it names the shape, colour, texture and size of the object
centred there, and it names the background and the largest object's colour and shape. Its pooled
256-d features stand in for Inception's in FID, KID and precision/recall; its colour-and-shape
logits stand in for Inception's classes in the Inception Score. huajia's numbers with it compare
huajia's models with each other, not with papers (use `--features inception:PATH` for those).

Reproduce: `huajia train features --out DIR --images {r['images']} --epochs {r['epochs']} --seed {r['seed']}`
({record['steps']} steps, {record['cpu_s'] / 60:.1f} CPU minutes).

Accuracy on {r['holdout']} renders of other seeds (cell heads: occupied cells only):

| head | accuracy |
|---|---|
{rows}
"""
