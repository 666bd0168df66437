"""Run a curation recipe over a dataset, streaming: workers open each image once and apply the
per-image filters; the main process drops perceptual duplicates and writes the clean imagefolder,
the Data-Juicer style export, ``dropped.jsonl`` (a reason per file) and the report. The
per-image work runs here, in ``workers`` processes, or on Ray Data (``ray``: an actor pool of
that many) — the same operators in the same order, so the same files are kept and dropped.

A file that is missing, empty, truncated, corrupt or not an image is dropped with that reason —
it never stops the run.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import yaml
from PIL import Image

from huajia.curation.ops import ImageDeduplicator, make_operator
from huajia.errors import HuajiaError
from huajia.imagefolder import Sample, iter_samples
from huajia.params import check, param

LOADER = "load"  # the pseudo-operator that drops unreadable files


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
                              choices=ImageDeduplicator.METHODS)
    min_similarity: float | None = param(None, help="Drop pictures whose image-text score is "
                                         "below this (the verifier's, or CLIP's).")
    clip_model: str = param("shapes-verifier", help="What scores image and text for "
                            "--min-similarity: a local CLIP folder, or the shapes verifier.")
    nsfw_threshold: float | None = param(None, help="Drop pictures at or above this nudenet "
                                         "score.", low=0.0, high=1.0)

    def __post_init__(self) -> None:
        check(self)

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
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise HuajiaError(f"cannot read config '{path}': {error.strerror}") from error
    except yaml.YAMLError as error:
        raise HuajiaError(f"config '{path}' is not valid YAML: {error}".replace("\n", " ")) from error
    if not isinstance(data, dict) or "dataset_path" not in data or "process" not in data:
        raise HuajiaError(f"config '{path}' needs 'dataset_path' and a 'process' list")
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
class Outcome:
    sample: Sample
    dropped_by: str | None = None
    reason: str = ""
    stats: dict = field(default_factory=dict)
    dedup_key: object = None
    size: tuple[int, int] | None = None


_WORKER_OPS: list = []


def _init_worker(process: tuple[tuple[str, dict], ...]) -> None:
    _WORKER_OPS[:] = [make_operator(name, params) for name, params in process]


def open_checked(path: Path) -> Image.Image:
    """Open and fully decode an image, or raise ValueError saying what is wrong with it."""
    if not path.exists():
        raise ValueError("missing file")
    if path.stat().st_size == 0:
        raise ValueError("zero-byte file")
    try:
        with Image.open(path) as image:
            image.load()  # decodes everything: truncated files fail here
            return image.convert("RGB") if image.mode not in ("RGB", "L") else image.copy()
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"not a readable image ({error})") from error


def _inspect(sample: Sample) -> Outcome:
    outcome = Outcome(sample)
    try:
        image = open_checked(sample.path)
    except ValueError as error:
        outcome.dropped_by, outcome.reason = LOADER, str(error)
        return outcome
    outcome.size = image.size
    for op in _WORKER_OPS:
        if isinstance(op, ImageDeduplicator):
            outcome.dedup_key = op.key(sample, image)
            continue
        verdict = op(sample, image)
        if verdict.stat is not None:
            outcome.stats[op.name] = verdict.stat
        if not verdict.keep:
            outcome.dropped_by, outcome.reason = op.name, verdict.reason
            break
    return outcome


class _RayInspector:
    """Ray Data's callable class: one actor's operators, made once, applied to each sample."""

    def __init__(self, process: tuple[tuple[str, dict], ...]):
        _init_worker(process)

    def __call__(self, batch: dict) -> dict:
        return {"outcome": [pickle.dumps(_inspect(pickle.loads(data)))
                            for data in batch["sample"]]}


def _on_ray(recipe: Recipe, samples: Iterator[Sample]) -> Iterator[Outcome]:
    """The per-image work on Ray Data, in the dataset's order (so duplicates resolve as in a
    local run: the first copy is kept)."""
    from huajia.ray_cluster import connect

    ray = connect(recipe.ray)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the command has its own
    context.execution_options.preserve_order = True
    dataset = ray.data.from_items([{"sample": pickle.dumps(s)} for s in samples])
    inspected = dataset.map_batches(_RayInspector, fn_constructor_args=(recipe.process,),
                                    batch_size=16, concurrency=max(1, recipe.workers), num_cpus=1)
    for row in inspected.iter_rows():
        yield pickle.loads(row["outcome"])


def _outcomes(recipe: Recipe, samples: Iterator[Sample]) -> Iterator[Outcome]:
    if recipe.ray:
        yield from _on_ray(recipe, samples)
        return
    if recipe.workers <= 1:
        _init_worker(recipe.process)
        yield from map(_inspect, samples)
        return
    with ProcessPoolExecutor(recipe.workers, initializer=_init_worker,
                             initargs=(recipe.process,)) as pool:
        while chunk := list(islice(samples, 256)):  # bounded: streaming, not all at once
            yield from pool.map(_inspect, chunk, chunksize=8)


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


def curate(recipe: Recipe, progress: Callable[[int], None] | None = None) -> CurationReport:
    for name, params in recipe.process:
        make_operator(name, params)  # fail on a bad config before any work
    dedup = next((make_operator(n, p) for n, p in recipe.process if n == "image_deduplicator"),
                 None)
    out = Path(recipe.out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    report, seen = CurationReport(), {}
    export = open(recipe.export_path, "w", encoding="utf-8") if recipe.export_path else None
    with open(out / "metadata.jsonl", "w", encoding="utf-8") as metadata, \
            open(out / "dropped.jsonl", "w", encoding="utf-8") as dropped:
        samples = iter_samples(recipe.dataset_path, recipe.text_key, recipe.image_key)
        for outcome in _outcomes(recipe, samples):
            report.total += 1
            for name, value in outcome.stats.items():
                report.stats[name].append(value)
            if outcome.dropped_by is None and dedup is not None:
                twin = _find_twin(seen, outcome.dedup_key, dedup.max_distance)
                if twin is not None:
                    outcome.dropped_by = dedup.name
                    outcome.reason = f"duplicate of {twin}"
                else:
                    seen[outcome.dedup_key] = outcome.sample.id
            if outcome.dropped_by:
                report.dropped[outcome.dropped_by] += 1
                report.reasons[outcome.dropped_by][_reason_kind(outcome.reason)] += 1
                dropped.write(json.dumps({"id": outcome.sample.id, "op": outcome.dropped_by,
                                          "reason": outcome.reason}, ensure_ascii=False) + "\n")
            else:
                report.kept += 1
                _keep(outcome.sample, out, metadata, export, recipe)
            if progress:
                progress(1)
    if export:
        export.close()
    return report


def _find_twin(seen: dict, key, max_distance: int):
    if key in seen:
        return seen[key]
    if max_distance > 0:
        digest, text = key
        for (other, other_text), name in seen.items():
            if other_text == text and digest - other <= max_distance:
                return name
    return None


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary ('duplicate of a.png' → 'duplicate')."""
    if reason.startswith("duplicate of"):
        return "duplicate"
    return reason.split(" (")[0] if reason.startswith("not a readable image") else reason[:60]


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
