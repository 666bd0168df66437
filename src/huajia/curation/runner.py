"""Run a curation recipe (``huajia curate --data DIR --out DIR`` with filter flags, or a
``Recipe`` from Python) on Data-Juicer. huajia opens every file once first: one that is missing,
empty, truncated, corrupt or not an image is dropped with that reason (it never stops the run;
Data-Juicer would). The readable ones become a Data-Juicer dataset, the operators run in
Data-Juicer's executor (its Ray executor with ``ray``), with huajia's own registered under
Data-Juicer's names (``dj_ops``), and the clean imagefolder, the Data-Juicer style export,
``dropped.jsonl`` (the operator per file) and the report are written from what it kept.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from PIL import Image, ImageFile

from huajia.errors import HuajiaError
from huajia.imagefolder import Sample, iter_samples
from huajia.params import check, param

LOADER = "load"  # the pseudo-operator that drops unreadable files
HASH_METHODS = ("phash", "dhash", "whash", "ahash")
_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}
# what each operator measured, from Data-Juicer's stats, for the report's histograms
_STAT = {"image_shape_filter": lambda st: min(st["image_width"][0], st["image_height"][0]),
         "image_aspect_ratio_filter": lambda st: st["aspect_ratios"][0],
         "image_size_filter": lambda st: st["image_sizes"][0],
         "image_text_similarity_filter": lambda st: st["image_text_similarity"][0],
         "image_nsfw_filter": lambda st: st["image_nsfw_score"][0]}


def parse_bytes(text: str | int) -> int:
    """'1.5MB', '200KiB', 1024 → bytes (Data-Juicer's image_size_filter units)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?i?B?)\s*", str(text), re.IGNORECASE)
    if not match or match.group(2).upper() not in _UNITS:
        raise HuajiaError(f"size '{text}' is not a byte size like 500KB, 1.5MB or 2GiB")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


@dataclass(frozen=True, kw_only=True)
class FilterOptions:
    """The filters ``huajia curate --data DIR --out DIR`` builds from its flags (a Data-Juicer
    YAML names its operators itself); ``steps()`` are the operators, in Data-Juicer's order."""

    min_width: int | None = param(None, help="Drop pictures narrower than this.", unit="pixels",
                                  low=1)
    min_height: int | None = param(None, help="Drop pictures lower than this.", unit="pixels",
                                   low=1)
    min_ratio: float | None = param(None, help="Drop pictures whose width / height is below "
                                    "this.", low=0.0)
    max_ratio: float | None = param(None, help="Drop pictures whose width / height is above "
                                    "this.", low=0.0)
    max_size: str | None = param(None, help="Drop files larger than this, e.g. 5MB.")
    dedup: str | None = param(None, help="Drop perceptual duplicates by this hash.",
                              choices=HASH_METHODS)
    min_similarity: float | None = param(None, help="Drop pictures whose image-text score is "
                                         "below this (the verifier's, or CLIP's).")
    clip_model: str = param("shapes-verifier", help="What scores image and text for "
                            "--min-similarity: a local CLIP folder, or the shapes verifier.")
    nsfw_threshold: float | None = param(None, help="Drop pictures at or above this nudenet "
                                         "score.", low=0.0, high=1.0)

    def __post_init__(self) -> None:
        check(self)
        if self.max_size:
            parse_bytes(self.max_size)  # a bad size is one line before any work

    def steps(self) -> tuple[tuple[str, dict], ...]:
        steps: list[tuple[str, dict]] = []
        if self.min_width or self.min_height:
            steps.append(("image_shape_filter", {"min_width": self.min_width or 1,
                                                 "min_height": self.min_height or 1}))
        if self.min_ratio is not None or self.max_ratio is not None:
            steps.append(("image_aspect_ratio_filter", {"min_ratio": self.min_ratio or 0.0,
                                                        "max_ratio": self.max_ratio or 1e9}))
        if self.max_size:
            steps.append(("image_size_filter", {"max_size": self.max_size}))
        if self.min_similarity is not None:
            steps.append(("image_text_similarity_filter", {"hf_clip": self.clip_model,
                                                           "min_score": self.min_similarity}))
        if self.nsfw_threshold is not None:
            steps.append(("image_nsfw_filter", {"score_threshold": self.nsfw_threshold}))
        if self.dedup:
            steps.append(("image_deduplicator", {"method": self.dedup}))
        return tuple(steps)


@dataclass(frozen=True)
class Recipe:
    dataset_path: str
    out_dir: str
    process: tuple[tuple[str, dict], ...]
    workers: int = 1  # processes (Ray actors with ``ray``); a Data-Juicer config's ``np``
    text_key: str = "text"
    image_key: str = "image"
    export_path: str | None = None
    ray: str | None = None  # a Ray address: the per-image work runs on Ray Data


def load_config(path: str | Path, out_dir: str | None = None) -> Recipe:
    """A Data-Juicer YAML config (dataset_path, export_path, np, text_keys, image_key,
    process: [{op: params}, …]); other Data-Juicer keys are accepted and ignored."""
    from huajia.curation.dj import read_config

    data = read_config(path)
    steps = []
    for entry in data["process"] or []:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise HuajiaError(f"each process entry is '- operator_name: {{params}}', got {entry!r}")
        (name, params), = entry.items()
        steps.append((name, params or {}))
    text_keys = data.get("text_keys", "text")
    export = data.get("export_path")
    out = out_dir or (str(Path(export).parent) if export else None)
    if out is None:
        raise HuajiaError("say where results go: set export_path in the config or pass --out")
    # Data-Juicer's own switch: executor_type: ray (with ray_address)
    ray = str(data.get("ray_address") or "auto") if data.get("executor_type") == "ray" else None
    return Recipe(str(data["dataset_path"]), out, tuple(steps), int(data.get("np", 1)),
                  text_keys[0] if isinstance(text_keys, list) else text_keys,
                  data.get("image_key", "image"), export, ray)


@dataclass
class CurationReport:
    total: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    reasons: dict = field(default_factory=lambda: defaultdict(Counter))
    stats: dict = field(default_factory=lambda: defaultdict(list))

    def to_dict(self) -> dict:
        return {"total": self.total, "kept": self.kept, "dropped": dict(self.dropped),
                "dropped_reasons": {op: dict(c.most_common(20)) for op, c in self.reasons.items()}}


def open_checked(path: Path) -> Image.Image:
    """Open and fully decode an image, or raise ValueError saying what is wrong with it."""
    if not path.exists():
        raise ValueError("missing file")
    if path.stat().st_size == 0:
        raise ValueError("zero-byte file")
    lenient = ImageFile.LOAD_TRUNCATED_IMAGES  # Data-Juicer turns it on when imported
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as image:
            image.load()  # decodes everything: truncated files fail here
            return image.convert("RGB") if image.mode not in ("RGB", "L") else image.copy()
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"not a readable image ({error})") from error
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient


def curate(recipe: Recipe, progress: Callable[[int], None] | None = None) -> CurationReport:
    from huajia.curation import dj

    # a bad config fails before any work
    dj.check_operators(list(recipe.process), Path.cwd(), on_ray=recipe.ray is not None)
    samples = list(iter_samples(recipe.dataset_path, recipe.text_key, recipe.image_key))
    out = Path(recipe.out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    unreadable = {}
    for sample in samples:
        try:
            open_checked(sample.path).close()
        except ValueError as error:
            unreadable[sample.id] = str(error)
    readable = [s for s in samples if s.id not in unreadable]
    kept, dropped_by, report = _run_operators(recipe, readable, out / "dj_work")
    report.total = len(samples)
    export = open(recipe.export_path, "w", encoding="utf-8") if recipe.export_path else None
    with open(out / "metadata.jsonl", "w", encoding="utf-8") as metadata, \
            open(out / "dropped.jsonl", "w", encoding="utf-8") as dropped:
        for sample in samples:  # in the dataset's order
            op, reason = ((LOADER, unreadable[sample.id]) if sample.id in unreadable
                          else dropped_by.get(sample.id, (None, "")))
            if op is None and sample.id in kept:
                report.kept += 1
                _keep(sample, out, metadata, export, recipe)
            else:
                op = op or "data-juicer"
                report.dropped[op] += 1
                report.reasons[op][_reason_kind(reason)] += 1
                dropped.write(json.dumps({"id": sample.id, "op": op, "reason": reason},
                                         ensure_ascii=False) + "\n")
            if progress:
                progress(1)
    if export:
        export.close()
    return report


def _run_operators(recipe: Recipe, samples: list[Sample], work: Path
                   ) -> tuple[set[str], dict[str, tuple[str, str]], CurationReport]:
    """Data-Juicer on ``samples``: the ids it kept, (operator, reason) per id it dropped, and
    a report holding what each operator measured. One process (so its tracer sees every drop
    and names the filter), or its Ray executor."""
    from huajia.curation.dj import read_rows, run_config

    report = CurationReport()
    if not recipe.process or not samples:
        return {s.id for s in samples}, {}, report
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with open(work / "input.jsonl", "w", encoding="utf-8") as handle:
        for sample in samples:
            handle.write(json.dumps({"text": sample.text, "image": [str(sample.path.resolve())],
                                     "huajia_id": sample.id}, ensure_ascii=False) + "\n")
    config = {"project_name": "huajia-curate", "dataset_path": str(work / "input.jsonl"),
              "export_path": str(work / "result.jsonl"), "np": 1, "text_keys": "text",
              "image_key": "image", "process": [{name: dict(params)}
                                                for name, params in recipe.process]}
    (work / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True),
                                      encoding="utf-8")
    run = run_config(work / "config.yaml", ray=recipe.ray)
    rows = read_rows(work / "result.jsonl")
    kept = {row["huajia_id"] for row in rows}
    dropped_by = {sample["huajia_id"]: (op, "duplicate" if op.endswith("deduplicator") else
                                        _reason(op, sample.get("__dj__stats__", {})))
                  for op, sample in run.dropped_samples if op != "dropped"}
    stats = [s.get("__dj__stats__", {}) for s in read_rows(work / "result_stats.jsonl")]
    stats += [s.get("__dj__stats__", {}) for _, s in run.dropped_samples]
    for name, _ in recipe.process:
        for measured in stats:
            try:
                report.stats[name].append(float(_STAT[name](measured)))
            except (KeyError, IndexError, TypeError):
                continue
    return kept, dropped_by, report


def _reason(op: str, stats: dict) -> str:
    """What the operator measured on a picture it dropped, in words."""
    try:
        return f"{op.removeprefix('image_').removesuffix('_filter').replace('_', ' ')} " \
               f"{_STAT[op](stats):.4g} out of range"
    except (KeyError, IndexError, TypeError):
        return "dropped"


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary."""
    if reason.startswith("not a readable image"):
        return reason.split(" (")[0]
    return re.sub(r"[\d.]+(e[+-]?\d+)? out of range", "out of range", reason)[:60]


def _keep(sample: Sample, out: Path, metadata, export, recipe: Recipe) -> None:
    name = Path(sample.id).name
    target = out / "images" / name
    index = 1
    while target.exists():  # same file name from different folders
        target = out / "images" / f"{Path(name).stem}-{index}{Path(name).suffix}"
        index += 1
    shutil.copy2(sample.path, target)
    row = {"file_name": f"images/{target.name}", recipe.text_key: sample.text, **sample.extra}
    metadata.write(json.dumps(row, ensure_ascii=False) + "\n")
    if export:
        export.write(json.dumps({recipe.text_key: sample.text, recipe.image_key:
                                 [str(target.resolve())], **sample.extra},
                                ensure_ascii=False) + "\n")
