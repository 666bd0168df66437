"""Paint a batch file into an HF imagefolder: ``images/NNNNNN-K.png`` (line N's K-th picture,
with its infotext) and ``metadata.jsonl`` (``file_name``, ``text`` and every parameter), so
``datasets.load_dataset("imagefolder", data_dir=OUT)`` reads it.

Locally one engine paints line after line; with Ray, Ray Data's ``map_batches`` sends lines to
an actor pool of engines and this process writes what comes back. Either way a line is one
engine call (its ``n`` pictures together) with the same engine settings, so the pictures are
bit-identical at the same threads per engine. Resumable: a picture counts once its metadata row
is on disk (written after the picture, fsynced); a rerun skips those and repaints the rest, and
a row torn by a kill is dropped.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from huajia.batch.lines import BatchLine
from huajia.engine.loading import LoadOptions
from huajia.thinking.options import ThinkOptions

METADATA = "metadata.jsonl"


@dataclass(frozen=True)
class BatchSettings:
    model: str = "embedded"
    threads: int | None = None  # torch threads per engine (None: torch's default)
    think: ThinkOptions = dataclasses.field(default_factory=ThinkOptions)
    critic: str = "shapes"
    family: str | None = None  # --family: the model's family where it cannot be told
    load: LoadOptions = dataclasses.field(default_factory=LoadOptions)  # --dtype, --offload, …


class LinePainter:
    """One engine painting whole lines; the same class paints here and in each Ray actor (as
    Ray Data's callable class it takes and gives column batches)."""

    def __init__(self, settings: BatchSettings):
        import torch

        from huajia.engine.engine import Engine
        from huajia.world.parser import unknown_words

        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.settings = settings
        # one part per call and every layout traced at once: the pictures do not depend on
        # how many lines this engine painted before, or on which worker it is
        self.engine = Engine(settings.model, vocabulary=unknown_words, split_batch=False,
                             trace_after=0, family=settings.family, load=settings.load)
        self._critic = None

    def paint(self, line: BatchLine) -> list[tuple[str, bytes, dict]]:
        """(file name, PNG bytes, metadata row) for each picture of the line."""
        from huajia.engine.infotext import png_bytes

        pictures = self._think(line) if line.think else self._generate(line)
        out = []
        for name, (image, infotext, seed) in zip(line.image_names(), pictures, strict=True):
            row = {"file_name": name, "text": line.request.prompt, "line": line.number,
                   **_fields(line), "seed": seed, "think": line.think, "infotext": infotext}
            out.append((name, png_bytes(image, infotext), row))
        return out

    def _generate(self, line: BatchLine) -> list[tuple]:
        result = self.engine.generate(line.request)
        return list(zip(result.images, result.infotexts, result.seeds, strict=True))

    def _think(self, line: BatchLine) -> list[tuple]:
        from huajia.thinking.critics import make_critic
        from huajia.thinking.loop import Thinker

        if self._critic is None:
            self._critic = make_critic(self.settings.critic)
        results = Thinker(self.engine, self._critic, self.settings.think).think_all(line.request)
        return [(r.image, r.infotext, r.seed) for r in results]

    def __call__(self, batch: dict) -> dict:
        out = {"name": [], "png": [], "row": []}
        for text in batch["line"]:
            for name, data, row in self.paint(BatchLine.from_dict(json.loads(text))):
                out["name"].append(name)
                out["png"].append(data)
                out["row"].append(json.dumps(row, ensure_ascii=False))
        return out


def _fields(line: BatchLine) -> dict:
    """The request's parameters as plain values (the prompt is the row's ``text``)."""
    fields = line.to_dict()["request"]
    fields.pop("prompt")
    return fields


class BatchOutput:
    """The imagefolder being written: which pictures are done, and writing one more."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        (self.folder / "images").mkdir(parents=True, exist_ok=True)
        self.done: set[str] = set()
        rows = []
        metadata = self.folder / METADATA
        if metadata.exists():
            for text in metadata.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(text)
                except json.JSONDecodeError:
                    continue  # torn by a kill: its picture is painted again
                name = row.get("file_name")
                if name not in self.done and (self.folder / str(name)).is_file():
                    self.done.add(name)
                    rows.append(text)
        # rewritten clean, so the next row never joins a torn one
        temporary = metadata.with_suffix(".tmp")
        temporary.write_text("".join(f"{r}\n" for r in rows), encoding="utf-8")
        os.replace(temporary, metadata)
        self._metadata = open(metadata, "a", encoding="utf-8")

    def pending(self, lines: list[BatchLine]) -> list[BatchLine]:
        return [line for line in lines if not set(line.image_names()) <= self.done]

    def write(self, name: str, data: bytes, row: dict | str) -> None:
        if name in self.done:
            return
        target = self.folder / name
        temporary = target.with_suffix(".part")
        temporary.write_bytes(data)
        os.replace(temporary, target)  # a picture is whole or absent
        text = row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)
        self._metadata.write(text + "\n")
        self._metadata.flush()
        os.fsync(self._metadata.fileno())
        self.done.add(name)

    def close(self) -> None:
        self._metadata.close()


@dataclass
class BatchSummary:
    lines: int
    skipped_lines: int  # already done by an earlier run
    written: int  # pictures written by this run


def pictures_to_paint(lines: list[BatchLine], out: str | Path) -> int:
    """How many pictures a run would paint (for its progress bar)."""
    output = BatchOutput(out)
    output.close()
    return sum(line.request.n for line in output.pending(lines))


def run_batch(lines: list[BatchLine], out: str | Path, settings: BatchSettings,
              ray_address: str | None = None, workers: int = 1,
              progress: Callable[[int], None] | None = None) -> BatchSummary:
    """Paint every line not done yet; ``progress(k)`` after each written picture."""
    output = BatchOutput(out)
    todo = output.pending(lines)
    written = 0
    try:
        painted = _on_ray(todo, settings, ray_address, workers) if ray_address else \
            _here(todo, settings)
        for name, data, row in painted:
            if name not in output.done:
                output.write(name, data, row)
                written += 1
            if progress:
                progress(1)
    finally:
        output.close()
    return BatchSummary(len(lines), len(lines) - len(todo), written)


def _here(lines: list[BatchLine], settings: BatchSettings) -> Iterator[tuple]:
    if not lines:
        return
    painter = LinePainter(settings)
    for line in lines:
        yield from painter.paint(line)


def _on_ray(lines: list[BatchLine], settings: BatchSettings, address: str,
            workers: int) -> Iterator[tuple]:
    from huajia.ray_cluster import connect

    ray = connect(address)
    if not lines:
        return
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts pictures
    dataset = ray.data.from_items([{"line": json.dumps(line.to_dict(), ensure_ascii=False)}
                                   for line in lines])
    painted = dataset.map_batches(LinePainter, fn_constructor_args=(settings,), batch_size=1,
                                  concurrency=workers, num_cpus=settings.threads or 1)
    for row in painted.iter_rows():
        yield row["name"], row["png"], row["row"]
