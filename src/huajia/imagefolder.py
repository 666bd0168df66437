"""The one reader of image/caption datasets (curation, LoRA training and the world's own
datasets all read through it), streamed one at a time (100k files, never 100k images in
memory): an HF imagefolder (metadata.jsonl or metadata.csv with ``file_name`` + ``text``), a
Data-Juicer jsonl (an image key holding a path or a list of paths), or a plain folder of images
with same-name ``.txt`` captions."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from huajia.errors import HuajiaError


@dataclass(frozen=True)
class Sample:
    id: str  # stable name for reports (the path relative to the dataset)
    path: Path
    text: str
    extra: dict = field(default_factory=dict)  # every other metadata field, kept as is


def iter_samples(source: str | Path, text_key: str = "text",
                 image_key: str = "image") -> Iterator[Sample]:
    path = Path(source)
    if not path.exists():
        raise HuajiaError(f"dataset '{source}' does not exist; pass an imagefolder, a folder of "
                          "images with .txt captions, or a metadata.jsonl")
    if path.is_file():
        if path.suffix == ".csv":
            yield from _from_csv(path, text_key)
        else:
            yield from _from_jsonl(path, text_key, image_key)
    elif (path / "metadata.jsonl").is_file():
        yield from _from_jsonl(path / "metadata.jsonl", text_key, image_key)
    elif (path / "metadata.csv").is_file():
        yield from _from_csv(path / "metadata.csv", text_key)
    else:
        yield from _from_folder(path)


def _resolve(base: Path, name: str) -> Path:
    candidate = Path(name)
    return candidate if candidate.is_absolute() else base / candidate


def _from_jsonl(path: Path, text_key: str, image_key: str) -> Iterator[Sample]:
    base = path.parent
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise HuajiaError(f"{path}:{number} is not JSON ({error.msg}); fix or remove "
                                  "that line") from error
            images = row.get("file_name", row.get(image_key))
            if isinstance(images, list):
                images = images[0] if images else None
            if not images:
                raise HuajiaError(f"{path}:{number} names no image (no 'file_name' or "
                                  f"'{image_key}'); set image_key in the config")
            extra = {k: v for k, v in row.items() if k not in ("file_name", image_key, text_key)}
            yield Sample(str(images), _resolve(base, str(images)), str(row.get(text_key, "")),
                         extra)


def _from_csv(path: Path, text_key: str) -> Iterator[Sample]:
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            name = row.pop("file_name", None)
            if not name:
                raise HuajiaError(f"{path} has a row without 'file_name'")
            text = row.pop(text_key, "")
            yield Sample(name, _resolve(path.parent, name), text, row)


def _from_folder(folder: Path) -> Iterator[Sample]:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix.lower() == ".txt" or path.name.startswith("."):
            continue
        caption = path.with_suffix(".txt")
        text = caption.read_text(encoding="utf-8").strip() if caption.is_file() else ""
        yield Sample(str(path.relative_to(folder)), path, text)


def read_metadata(folder: str | Path) -> Iterator[dict]:
    """Rows of an imagefolder's metadata.jsonl as they are written (``file_name`` + fields)."""
    path = Path(folder) / "metadata.jsonl"
    if not path.is_file():
        raise HuajiaError(f"no metadata.jsonl in '{folder}'; is it an imagefolder made by "
                          "'huajia world dataset'?")
    for sample in _from_jsonl(path, "text", "image"):
        yield {"file_name": sample.id, "text": sample.text, **sample.extra}
