"""What ``Engine.generate`` costs on every model family against a plain diffusers call of the same
pipeline (same prompt, negative prompt, size, steps, seed and sampler), on the tiny random-weight
fixtures of tests/family_fixtures, interleaved in one run. The ratio is huajia's overhead (prompt
path, the NaN check, the family's switches); the tiny models make it as large as it gets.

Run: python benchmarks/families.py [--steps 4] [--repeats 7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import report

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.family_fixtures import FAMILIES, call_kwargs, prepare, saved  # noqa: E402

from huajia.engine.engine import Engine  # noqa: E402
from huajia.engine.request import GenerationRequest  # noqa: E402

PROMPT, NEGATIVE, SIDE = "a red circle left of a blue square", "blurry", 64


def _plain(engine: Engine, name: str, steps: int, seed: int) -> None:
    kwargs = {**call_kwargs(name), "height": SIDE, "width": SIDE}
    if name == "flux":  # huajia turns on true CFG for a negative prompt: compare like with like
        kwargs["true_cfg_scale"] = 3.5
    engine.pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps,
                generator=torch.Generator().manual_seed(seed), **kwargs)


def _huajia(engine: Engine, steps: int, seed: int) -> None:
    engine.generate(GenerationRequest(PROMPT, negative_prompt=NEGATIVE, seed=seed, steps=steps,
                                      width=SIDE, height=SIDE, scheduler="model"))


def _seconds(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for name in FAMILIES:
            engine = Engine(str(saved(name, root)))
            prepare(name, engine.pipe)  # HiDream's pipeline paints a fixed area unless told
            _huajia(engine, args.steps, 0)  # warm up both paths
            _plain(engine, name, args.steps, 0)
            plain = huajia = float("inf")
            for seed in range(args.repeats):  # interleaved, so drift hits both alike
                plain = min(plain, _seconds(_plain, engine, name, args.steps, seed))
                huajia = min(huajia, _seconds(_huajia, engine, args.steps, seed))
            rows.append([name, engine.family.name, round(plain * 1000, 1),
                         round(huajia * 1000, 1), round(huajia / plain, 3)])
    report("families", f"Engine.generate vs plain diffusers per family ({SIDE}px, {args.steps} "
           "steps, tiny fixtures, best of " + str(args.repeats) + ")",
           ["fixture", "family", "diffusers ms", "huajia ms", "time ratio"], rows,
           {"steps": args.steps, "side": SIDE, "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
