"""Seconds per denoising step over painted sizes on the served model, and the fit the server's
cost budget uses for size (``serving/data/step_cost.json``): attention grows faster than the
pixel count, so pricing size linearly lets a 2048² request hold the worker for hours.

One thread, process CPU time (the machine is shared): each size paints 1 and 1 + K steps, and
the difference / K is one step without the encode and decode. The fit is
``s_per_step = c + a·P + b·P²`` (P in megapixels, least squares; c: a step's fixed overhead);
the budget prices a step (``serving.budget.SizePrice``) by this curve relative to the model's
native size.

    OMP_NUM_THREADS=1 python benchmarks/step_cost.py [--model embedded] [--sizes 64,128,...]
→ benchmarks/results/step_cost.json and, with --install, src/huajia/serving/data/step_cost.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS

from huajia.engine.engine import Engine
from huajia.engine.request import GenerationRequest

DATA = Path(__file__).resolve().parents[1] / "src/huajia/serving/data/step_cost.json"


def cpu_seconds(engine: Engine, side: int, steps: int) -> float:
    request = GenerationRequest("a red circle left of a blue square", seed=1, steps=steps,
                                width=side, height=side, upscaler="none")
    start = time.process_time()
    engine.generate(request)
    return time.process_time() - start


def step_seconds(engine: Engine, side: int, extra: int) -> float:
    cpu_seconds(engine, side, 1)  # warm this size's kernels
    one = min(cpu_seconds(engine, side, 1) for _ in range(2))
    more = cpu_seconds(engine, side, 1 + extra)
    return max(more - one, 1e-9) / extra


def fit(points: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Least squares of s = c + a·P + b·P² (c: a step's fixed overhead: scheduler, launches)."""
    p = np.array([x for x, _ in points])
    s = np.array([y for _, y in points])
    (c, a, b), *_ = np.linalg.lstsq(np.stack([np.ones_like(p), p, p * p], axis=1), s, rcond=None)
    return float(c), float(a), float(max(b, 0.0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--sizes", default="64,128,192,256,384,512")
    parser.add_argument("--extra-steps", type=int, default=2)
    parser.add_argument("--install", action="store_true", help="write the fit into the package")
    args = parser.parse_args()
    torch.set_num_threads(1)
    engine = Engine(args.model)
    out = RESULTS / "step_cost.json"
    saved = json.loads(out.read_text()) if out.exists() else {}
    done = saved.get("points") or saved.get("points_s_per_step") or {}
    for side in (int(s) for s in args.sizes.split(",")):
        if str(side) in done:
            continue
        done[str(side)] = step_seconds(engine, side, args.extra_steps)
        print(f"{side}x{side}: {done[str(side)]:.4f} s/step (CPU, 1 thread)", flush=True)
        out.write_text(json.dumps({"model": args.model, "points": done}, indent=1))
    done = dict(sorted(done.items(), key=lambda item: int(item[0])))
    points = [(int(k) ** 2 / 1e6, v) for k, v in done.items()]
    c, a, b = fit(points)
    record = {"model": args.model, "measured": "process CPU time, 1 thread",
              "points_s_per_step": done, "c_s": c, "a_s_per_mp": a, "b_s_per_mp2": b,
              "native_side": engine.facts.native_size}
    out.write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))
    if args.install:
        DATA.write_text(json.dumps({k: record[k] for k in ("model", "measured", "native_side", "c_s",
                                                           "a_s_per_mp", "b_s_per_mp2",
                                                           "points_s_per_step")}, indent=1)
                        + "\n")


if __name__ == "__main__":
    main()
