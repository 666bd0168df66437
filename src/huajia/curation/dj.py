"""``huajia curate --config``: a Data-Juicer config run by Data-Juicer itself.

The config runs as written (its dataset, ``np``, keys and ``export_path``): the same executor
``dj-process`` uses (``--ray``: Data-Juicer's Ray executor), so the same samples are kept.
Before any work, each operator is checked: an unknown name, one whose Data-Juicer
implementation needs torchvision where none is installed (no CPU build matches this torch;
huajia registers its own ``image_deduplicator`` instead), or a local model folder that is not
there is one line naming it. huajia's operators (``dj_ops``) are registered under Data-Juicer's
names. Data-Juicer's tracer records what each filter dropped; from it come the report
(kept / dropped per operator, the measured stats) and a contact sheet of the dropped pictures.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import json
import re
import shutil
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from huajia.errors import HuajiaError

TORCHVISION = ("torchvision", "imagededup")  # packages that import torchvision
CONSOLE_LOG = "data_juicer.log"  # Data-Juicer's console, beside the results


@dataclass
class DJRun:
    """What a Data-Juicer run kept and dropped."""

    total: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)  # per operator
    dropped_samples: list[tuple[str, dict]] = field(default_factory=list)  # (operator, sample)
    export_path: str = ""
    input_path: str = ""
    console_log: str = ""  # Data-Juicer's console output

    def to_dict(self) -> dict:
        return {"total": self.total, "kept": self.kept, "dropped": dict(self.dropped),
                "export_path": self.export_path}


def read_config(path: str | Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise HuajiaError(f"cannot read config '{path}': {error.strerror}") from error
    except yaml.YAMLError as error:
        raise HuajiaError(f"config '{path}' is not valid YAML: {error}".replace("\n", " ")) from error
    if not isinstance(data, dict) or "dataset_path" not in data or "process" not in data:
        raise HuajiaError(f"config '{path}' needs 'dataset_path' and a 'process' list")
    return data


def operators(data: dict) -> list[tuple[str, dict]]:
    steps = []
    for entry in data.get("process") or []:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise HuajiaError(f"each process entry is '- operator_name: {{params}}', got {entry!r}")
        (name, params), = entry.items()
        steps.append((name, params or {}))
    return steps


def check_operators(steps: list[tuple[str, dict]], base: Path, on_ray: bool = False) -> None:
    """One line for the first operator that cannot run here, before any work."""
    from data_juicer.ops.base_op import OPERATORS

    from huajia.curation import dj_ops

    dj_ops.register()
    known = OPERATORS.modules
    has_torchvision = importlib.util.find_spec("torchvision") is not None
    for name, params in steps:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=3)
            raise HuajiaError(f"unknown operator '{name}'" + (
                f"; did you mean {', '.join(close)}?" if close else
                "; see Data-Juicer's operator list (huajia adds image_aesthetics_filter, "
                "image_text_similarity_filter, image_nsfw_filter, image_deduplicator)"))
        if on_ray and name == "image_deduplicator":
            raise HuajiaError("image_deduplicator does not run on Data-Juicer's Ray executor (it "
                              "takes ray_image_deduplicator, which needs torchvision); "
                              "deduplicate without --ray")
        cls = known[name]
        if not has_torchvision and cls not in dj_ops.HUAJIA_OPERATORS.values() and \
                any(mark in inspect.getsource(inspect.getmodule(cls)) for mark in TORCHVISION):
            raise HuajiaError(f"operator '{name}' needs torchvision, which has no build beside "
                              "this CPU torch; drop it from the config or use huajia's "
                              "image_deduplicator")
        key, default = dj_ops.MODEL_PATHS.get(name, (None, ""))
        folder = str(params.get(key) or default) if key else ""
        if key and folder != dj_ops.VERIFIER and not (folder and (base / folder).is_dir()):
            raise HuajiaError(f"{name}: {key} '{folder}' is not a local folder; pass the path "
                              "of a downloaded model")


def run_config(config: str | Path, out_dir: str | Path | None = None,
               ray: str | None = None) -> DJRun:
    """Run ``config`` with Data-Juicer (``ray``: its Ray executor at that address); results go
    where the config says, or to ``out_dir``/result.jsonl when given."""
    data = read_config(config)
    steps = operators(data)
    check_operators(steps, Path.cwd(), on_ray=ray is not None)
    if not Path(str(data["dataset_path"])).exists():
        raise HuajiaError(f"dataset_path '{data['dataset_path']}' does not exist")
    export = str(Path(out_dir) / "result.jsonl") if out_dir else data.get("export_path")
    if not export:
        raise HuajiaError("say where results go: set export_path in the config or pass --out")
    work = Path(export).parent / "dj_work"  # this run's tracer files alone
    shutil.rmtree(work, ignore_errors=True)
    args = ["--config", str(config), "--export_path", export, "--work_dir", str(work)]
    if ray:  # (Data-Juicer 1.6's tracer cannot run inside its Ray executor)
        args += ["--executor_type", "ray", "--ray_address", ray]
    else:
        args += ["--open_tracer", "true", "--trace_num", "1000000000"]
    run = _execute(args, ray is not None, Path(export).parent / CONSOLE_LOG)
    run.export_path, run.console_log = export, str(Path(export).parent / CONSOLE_LOG)
    return _read_traces(run, work, export, [name for name, _ in steps])


def _execute(args: list[str], on_ray: bool, console_log: Path) -> DJRun:
    """Data-Juicer's executor on ``args``, its console into ``console_log``; what each operator
    left, from its log line ("OP [name] Done in …s. Left N samples."), gives the drops per
    operator whatever ``np``."""
    with _console_to(console_log):
        return _execute_here(args, on_ray)


@contextmanager
def _console_to(path: Path):
    """Data-Juicer's console output into ``path``: its loguru lines (its logger setup binds
    them to the ``sys.stderr`` of the moment, so each run sets it up again) and what it
    redirects of stdout and stderr (datasets' bars). huajia's own bars and report stay."""
    import sys

    import data_juicer.utils.logger_utils as dj_logging
    from loguru import logger

    path.parent.mkdir(parents=True, exist_ok=True)
    saved = sys.stdout, sys.stderr
    with open(path, "a", encoding="utf-8") as log:
        sys.stdout = sys.stderr = log
        dj_logging.LOGGER_SETUP = False
        try:
            yield
        finally:
            logger.remove()  # its sinks (the queued ones drained) before the file closes
            sys.stdout, sys.stderr = saved


def _execute_here(args: list[str], on_ray: bool) -> DJRun:
    from data_juicer.config import init_configs
    from loguru import logger

    with _ray_mode(on_ray):
        cfg = init_configs(args=args)
    if on_ray:
        from data_juicer.core.executor.ray_executor import RayExecutor as Executor
    else:
        from data_juicer.core import DefaultExecutor as Executor
    executor = Executor(cfg)
    run = DJRun(total=_count_input(cfg.dataset_path), input_path=str(cfg.dataset_path))
    left = []

    def read(message) -> None:
        found = re.search(r"OP \[(\w+)\] Done in .*Left (\d+) samples", str(message))
        if found:
            left.append((found.group(1), int(found.group(2))))

    handler = logger.add(read, level="INFO", format="{message}")
    with _ray_mode(on_ray):
        try:
            executor.run()
        finally:
            logger.remove(handler)
    before = run.total
    for name, count in left:
        run.dropped[name] += before - count
        before = count
    return run


@contextmanager
def _ray_mode(on: bool):
    """Data-Juicer's switch for "inside a Ray job", set for this run alone (its Ray executor
    sets it and leaves it set, which sends a later local run's tracer to Ray)."""
    import os

    from data_juicer.utils.constant import RAY_JOB_ENV_VAR

    before = os.environ.get(RAY_JOB_ENV_VAR)
    os.environ[RAY_JOB_ENV_VAR] = "1" if on else "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(RAY_JOB_ENV_VAR, None)
        else:
            os.environ[RAY_JOB_ENV_VAR] = before


def _count_input(dataset_path: str) -> int:
    path = Path(dataset_path)
    if path.is_file() and path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as handle:
            return sum(1 for line in handle if line.strip())
    return 0


def _read_traces(run: DJRun, work: Path, export: str, names: list[str]) -> DJRun:
    """Kept: the export's lines; the dropped samples: the input's not kept, each labelled by
    the filter whose trace holds it (Data-Juicer's tracer sees them where ``np`` is 1)."""
    kept = read_rows(Path(export))
    run.kept = len(kept)
    by_whom = {}
    for name in dict.fromkeys(names):
        for trace in work.glob(f"*/trace/sample_trace-{name}.jsonl"):
            with open(trace, encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        traced = json.loads(line)  # with what the filter measured
                        by_whom.setdefault(_identity(traced), (name, traced))
    kept_ids = {_identity(sample) for sample in kept}
    run.dropped_samples = [by_whom.get(_identity(sample), ("dropped", sample))
                           for sample in _input_samples(run.input_path)
                           if _identity(sample) not in kept_ids]
    traced = Counter(op for op, _ in run.dropped_samples)
    untraced = [op for op, n in run.dropped.items() if n > traced[op]]
    if len(untraced) == 1:  # a deduplicator (no sample trace), or a filter the tracer missed
        run.dropped_samples = [(untraced[0] if op == "dropped" else op, sample)
                               for op, sample in run.dropped_samples]
    if not run.total:
        run.total = run.kept + sum(run.dropped.values())
    return run


def read_rows(path: Path) -> list[dict]:
    """A JSON-lines export: one file, or the folder of parts Data-Juicer's Ray executor writes
    there."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else \
        [path] if path.is_file() else []
    rows = []
    for part in files:
        with open(part, encoding="utf-8") as handle:
            rows += [json.loads(line) for line in handle if line.strip()]
    return rows


def _identity(sample: dict) -> str:
    """A sample without Data-Juicer's added fields (its stats, meta, hashes)."""
    return json.dumps({k: v for k, v in sample.items() if not k.startswith("__dj__")},
                      sort_keys=True, ensure_ascii=False)


def _input_samples(path: str) -> list[dict]:
    if not path.endswith(".jsonl") or not Path(path).is_file():
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_run_report(run: DJRun, out: str | Path, image_key: str = "image") -> tuple[Path, Path]:
    """``report.json`` (kept / dropped per operator, each dropped picture and by whom) and
    ``report.png``: a contact sheet of the dropped pictures, labelled by operator."""
    from PIL import Image

    from huajia.drawing import Tile, captioned_grid

    out = Path(out)
    record = {**run.to_dict(), "dropped_pictures": [
        {"op": op, "image": sample.get(image_key)} for op, sample in run.dropped_samples]}
    json_path = out / "report.json"
    json_path.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
    tiles = []
    for op, sample in run.dropped_samples[:64]:
        for path in sample.get(image_key) or []:
            try:
                with Image.open(path) as image:
                    tiles.append(Tile(image.convert("RGB"), (op,)))
            except OSError:
                continue
    title = (f"{run.total} samples: kept {run.kept}; dropped "
             + (", ".join(f"{op} {n}" for op, n in run.dropped.items()) or "none"))
    sheet = captioned_grid(tiles, columns=8, tile_px=128, title=title) if tiles else \
        captioned_grid([Tile(Image.new("RGB", (128, 128), "white"), ("nothing dropped",))],
                       title=title)
    png_path = out / "report.png"
    sheet.save(png_path)
    return json_path, png_path
