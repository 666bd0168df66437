"""huajia's Engine vs a plain diffusers ``StableDiffusionPipeline.__call__``: same pipeline, same
request, same seeds, in one run. Reports the time ratio (goal ≤ 1.02) and images/s at batch 1
and 8. Run: python benchmarks/engine_vs_diffusers.py [--model embedded] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import report

from huajia.engine.engine import Engine
from huajia.engine.request import GenerationRequest

PROMPT = "two red circles left of a blue square"


def _plain(engine: Engine, batch: int, steps: int, seed: int) -> None:
    generators = [torch.Generator().manual_seed(seed + i) for i in range(batch)]
    engine.pipe(PROMPT, negative_prompt="", num_inference_steps=steps, guidance_scale=5.0,
                num_images_per_prompt=batch, generator=generators)


def _huajia(engine: Engine, batch: int, steps: int, seed: int) -> None:
    engine.generate(GenerationRequest(PROMPT, seed=seed, n=batch, steps=steps, guidance=5.0,
                                      scheduler="model"))


def _best(fn, repeats: int) -> float:
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    engine = Engine(args.model)
    engine.pipe.scheduler = type(engine.pipe.scheduler).from_config(engine.base_scheduler_config)
    rows = []
    for batch in (1, 8):
        _huajia(engine, batch, args.steps, 0)  # warm up both paths
        _plain(engine, batch, args.steps, 0)
        plain = huajia = float("inf")
        for _ in range(args.repeats):  # interleave so drift hits both alike
            plain = min(plain, _best(lambda r, b=batch: _plain(engine, b, args.steps, r), 1))
            huajia = min(huajia, _best(lambda r, b=batch: _huajia(engine, b, args.steps, r), 1))
        rows.append([batch, args.steps, round(batch / plain, 2), round(batch / huajia, 2),
                     round(huajia / plain, 3)])
    report("engine_vs_diffusers", f"Engine vs plain diffusers ({args.model}, {engine.device})",
           ["batch", "steps", "diffusers img/s", "huajia img/s", "time ratio"], rows,
           {"model": args.model, "device": str(engine.device)})


if __name__ == "__main__":
    main()
