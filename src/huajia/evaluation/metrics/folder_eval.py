"""``huajia eval images``: a folder of pictures measured against a reference folder or the world
(FID, KID, IS, precision/recall, diversity over a feature network; CLIPScore against each
picture's prompt, from metadata.jsonl or its infotext), and the grid of the pictures nearest to
the reference and farthest from it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from huajia.errors import HuajiaError
from huajia.evaluation.metrics import DEFAULT_METRICS
from huajia.evaluation.metrics.images import Pictures

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def metric_names(text: str) -> list[str]:
    """A comma list of metric names, each checked ('fid,kid' → ['fid', 'kid'])."""
    from huajia.evaluation.metrics.compute import check_metrics

    return check_metrics([m.strip() for m in text.split(",") if m.strip()])


@dataclass
class FolderReport:
    numbers: dict  # what the report JSON holds
    pictures: Pictures
    fake_features: torch.Tensor
    real_features: torch.Tensor

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.numbers, indent=1, ensure_ascii=False), encoding="utf-8")

    def nearest_grid(self) -> Image.Image:
        """The 6 pictures nearest to the reference's features and the 6 farthest (in red)."""
        from huajia.drawing import Tile, captioned_grid

        fakes = self.pictures
        distance = torch.cdist(self.fake_features.double(),
                               self.real_features.double()).min(dim=1).values
        order = distance.argsort().tolist()
        picks = order[:6] + [i for i in order[-6:] if i not in order[:6]]
        tiles = [Tile(Image.fromarray(fakes.images[i].permute(1, 2, 0).numpy()),
                      (fakes.names[i], f"distance {distance[i]:.2f}"),
                      (30, 30, 30) if k < 6 else (190, 30, 30)) for k, i in enumerate(picks)]
        return captioned_grid(tiles, columns=6, tile_px=128, text_lines=2, font_px=11,
                              title="nearest to the reference (black) and farthest (red)")


def measure_folder(fake: Path, real: str = "world", metrics: str = DEFAULT_METRICS,
                   features: str = "world", clip_model: Path | None = None,
                   reference_images: int = 2000, progress: Progress | None = None) -> FolderReport:
    """Measure the pictures in ``fake`` against ``real`` (a folder, or 'world': that many oracle
    renders of the world's training distribution, their features cached)."""
    from huajia.evaluation.metrics.compute import check_count, clip_score, measure
    from huajia.evaluation.metrics.features import extract, make_extractor
    from huajia.evaluation.metrics.images import cached_features, read_folder, world_renders

    names = metric_names(metrics)
    if "clip-score" in names and clip_model is None:
        raise HuajiaError("clip-score needs --clip-model DIR (a local CLIP checkpoint)")
    tell = progress or (lambda stage, done, total: None)
    extractor = make_extractor(features)
    side = 299 if features.startswith("inception") else 128
    fakes = read_folder(fake, side, "--fake")
    check_count(len(fakes.names), f"--fake '{fake}'")
    if real == "world":
        key = {"extractor": extractor.identity, "world": "train", "n": reference_images, "seed": 0}
        real_features, _ = cached_features(key, lambda: extract(extractor, world_renders(
            reference_images, 0, progress=lambda d, t: tell("world reference", d, t))))
    else:
        reals = read_folder(real, side, "--real")
        check_count(len(reals.names), f"--real '{real}'")
        real_features, _ = extract(extractor, reals.images)
    fake_features, logits = extract(extractor, fakes.images)
    result = {"features": extractor.name, "real": real, "fake": str(fake),
              "n_fake": len(fakes.names), "skipped_unreadable": len(fakes.skipped),
              **measure(names, real_features, fake_features, logits)}
    if "is" in names and logits is None:
        result["is"] = None  # CLIP has no classes
    if "clip-score" in names:
        captions = _captions(fake)
        texts = [_prompt_of(fake / n, fake, captions) for n in fakes.names]
        keep = [i for i, t in enumerate(texts) if t]
        result["clip_score"] = (clip_score(fakes.images[keep], [texts[i] for i in keep],
                                           str(clip_model)) if keep else None)
        result["clip_score_images"] = len(keep)
    return FolderReport(result, fakes, fake_features, real_features)


def _prompt_of(path: Path, folder: Path, captions: dict[str, str]) -> str | None:
    """A picture's prompt: metadata.jsonl's text, else its infotext's prompt."""
    from huajia.engine.infotext import parse_infotext, read_infotext

    name = str(path.relative_to(folder))
    if name in captions:
        return captions[name]
    try:
        return parse_infotext(read_infotext(path))["Prompt"] or None
    except HuajiaError:  # no infotext: the picture has no known prompt
        return None


def _captions(folder: Path) -> dict[str, str]:
    from huajia.imagefolder import read_metadata

    if not (folder / "metadata.jsonl").is_file():
        return {}
    rows = read_metadata(folder)
    return {row["file_name"]: row.get("text") or row.get("prompt") for row in rows
            if row.get("text") or row.get("prompt")}
