"""Seconds of finishing work per output megapixel, and the fit the server's cost budget uses for
the upscaler (``serving/data/upscale_cost.json``): a request for a size past the model's native
one is painted native, then upscaled, and every picture is then screened (nudenet), watermarked
and compressed as PNG at the size asked; none of that is a denoising step, so the step fit does
not price it, and 10 pictures of 2048² cost seconds of CPU on a request the steps price at little.

One thread, process CPU time (the machine is shared): a picture the model painted at its native
size is finished at each output size (Lanczos upscale, NSFW screen, watermark, PNG), the best of
``--repeats``; the fit is ``s = c + k·P`` (P: output megapixels, least squares).

    OMP_NUM_THREADS=1 python benchmarks/upscale_cost.py [--model embedded] [--sides 128,...]
→ benchmarks/results/upscale_cost.json and, with --install, src/huajia/serving/data/upscale_cost.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS
from PIL import Image

from huajia.engine.engine import Engine
from huajia.engine.infotext import png_bytes
from huajia.engine.request import GenerationRequest
from huajia.serving.provenance import embed_watermark

DATA = Path(__file__).resolve().parents[1] / "src/huajia/serving/data/upscale_cost.json"


def finishing_seconds(painted: Image.Image, side: int, screen) -> dict[str, float]:
    """CPU seconds of each finishing stage for one picture finished at side × side."""
    stages: dict[str, float] = {}

    def timed(name, work, value):
        start = time.process_time()
        result = work(value)
        stages[name] = time.process_time() - start
        return result

    image = timed("upscale", lambda p: p.resize((side, side), Image.Resampling.LANCZOS), painted)
    if screen is not None:
        timed("nsfw", screen, image)
    image = timed("watermark", lambda p: embed_watermark(p, "benchmark"), image)
    timed("png", lambda p: png_bytes(p, "a red circle\nSteps: 4"), image)
    return stages


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares of s = c + k·P."""
    p = np.array([x for x, _ in points])
    s = np.array([y for _, y in points])
    (c, k), *_ = np.linalg.lstsq(np.stack([np.ones_like(p), p], axis=1), s, rcond=None)
    return float(c), float(k)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--sides", default="128,256,512,1024,1536,2048")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-nsfw", action="store_true", help="leave the nudenet screen out")
    parser.add_argument("--install", action="store_true", help="write the fit into the package")
    args = parser.parse_args()
    torch.set_num_threads(1)
    engine = Engine(args.model)
    native = engine.facts.native_size
    painted = engine.generate(GenerationRequest("a red circle left of a blue square", seed=1,
                                                steps=4, width=native, height=native)).images[0]
    screen = None
    if not args.no_nsfw:
        from huajia.scorers.nsfw import NsfwDetector

        screen = NsfwDetector().score
        screen(painted)  # load the detector outside the timing
    points, stages = {}, {}
    for side in (int(s) for s in args.sides.split(",")):
        runs = [finishing_seconds(painted, side, screen) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: sum(r.values()))
        stages[str(side)] = {k: round(v, 4) for k, v in best.items()}
        points[str(side)] = sum(best.values())
        print(f"{side}x{side}: {points[str(side)]:.3f} s {stages[str(side)]}", flush=True)
    c, k = fit([(int(side) ** 2 / 1e6, s) for side, s in points.items()])
    record = {"model": args.model, "measured": "process CPU time, 1 thread",
              "stages": "Lanczos upscale from the native size, nudenet screen, watermark, PNG"
                        if screen else "Lanczos upscale from the native size, watermark, PNG",
              "points_s": points, "stages_s": stages, "c_s": c, "k_s_per_mp": k,
              "native_side": native}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "upscale_cost.json").write_text(json.dumps(record, indent=1))
    if args.install:
        DATA.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({"c_s": c, "k_s_per_mp": k}))


if __name__ == "__main__":
    main()
