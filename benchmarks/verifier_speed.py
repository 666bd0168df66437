"""Verifier throughput at 128x128 on one core: detection + checking, clean and degraded pictures.

The thinking loop runs the verifier at every pause, so it must be cheap (target: hundreds of
images per second on one core). Run: python benchmarks/verifier_speed.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from _common import report  # noqa: E402

from huajia.world import sampler  # noqa: E402
from huajia.world.perturb import perturb  # noqa: E402
from huajia.world.render import render  # noqa: E402
from huajia.world.verifier import verify  # noqa: E402


def measure(images, specs, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for image, spec in zip(images, specs, strict=True):
            verify(image, spec)
        best = min(best, time.perf_counter() - start)
    return len(images) / best


def main(n: int = 300) -> None:
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    scenes = [sampler.sample_scene(rng, "eval", seed=i) for i in range(n)]
    clean = [np.asarray(render(s)) for s in scenes]
    degraded = [np.asarray(perturb(render(s), i)) for i, s in enumerate(scenes)]
    specs = [s.spec for s in scenes]
    objects = sum(len(s.objects) for s in scenes) / n
    rows = [["clean", 128, round(objects, 2), round(measure(clean, specs), 1)],
            ["degraded", 128, round(objects, 2), round(measure(degraded, specs), 1)]]
    report("verifier_speed", "Verifier throughput (1 core)",
           ["pictures", "side", "objects/picture", "images/s"], rows, {"n_images": n})


if __name__ == "__main__":
    main()
