"""The image service under load: throughput at concurrency 1/4/8 (micro-batching) against the
same engine behind a single lock (``_serial_serve.py``, as AUTOMATIC1111 serves), cache-hit latency,
and how far the watermark survives re-encoding.

    python benchmarks/serving.py [--model embedded] [--requests 16] [--steps 20]

Each mode starts a real `huajia serve` process and sends requests over HTTP from threads.
Goals (issue 6): batched ≥ 1.8× serial at concurrency 8; cache-hit p99 ≤ 10 ms.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from _common import Server, report
from PIL import Image


def _generate(url: str, body: dict) -> tuple[float, bytes]:
    start = time.perf_counter()
    response = httpx.post(f"{url}/v1/images/generations", json=body, timeout=600)
    response.raise_for_status()
    import base64

    return time.perf_counter() - start, base64.b64decode(response.json()["data"][0]["b64_json"])


def throughput(server: Server, concurrency: int, requests: int, steps: int, offset: int) -> dict:
    prompts = ["a red circle", "两个蓝色正方形", "a green star above a yellow triangle",
               "三个黑色圆形"]
    bodies = [{"prompt": prompts[i % len(prompts)], "seed": offset + i, "steps": steps}
              for i in range(requests)]
    _generate(server.url, {**bodies[0], "seed": 10**9 + offset})  # warm-up
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = [t for t, _ in pool.map(lambda b: _generate(server.url, b), bodies)]
    wall = time.perf_counter() - start
    return {"images_per_s": requests / wall, "p50_s": statistics.median(latencies),
            "wall_s": wall}


def cache_latency(server: Server, count: int) -> dict:
    body = {"prompt": "a red circle", "seed": 1, "steps": 4}
    _, first = _generate(server.url, body)
    times = []
    with httpx.Client(timeout=60) as client:
        for _ in range(count):
            start = time.perf_counter()
            response = client.post(f"{server.url}/v1/images/generations", json=body)
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
    import base64

    same = base64.b64decode(response.json()["data"][0]["b64_json"]) == first
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "bit_identical": same}


def watermark_survival(images: list[bytes], key: str) -> dict:
    from huajia.serving.provenance import check_provenance
    from huajia.world import sampler
    from huajia.world.render import render

    def jpeg(image, quality):
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue()))

    def scale(image, factor):
        side = round(image.width * factor)
        return image.resize((side, side), Image.LANCZOS)

    attacks = {"none": lambda im: im, "jpeg95": lambda im: jpeg(im, 95),
               "jpeg90": lambda im: jpeg(im, 90), "jpeg75": lambda im: jpeg(im, 75),
               "jpeg50": lambda im: jpeg(im, 50), "resize0.9": lambda im: scale(im, 0.9),
               "resize0.75": lambda im: scale(im, 0.75), "resize0.5": lambda im: scale(im, 0.5),
               "resize1.5": lambda im: scale(im, 1.5),
               "jpeg75+resize0.75": lambda im: jpeg(scale(im, 0.75), 75)}
    pictures = [Image.open(io.BytesIO(data)) for data in images]
    survival = {name: float(np.mean([check_provenance(attack(p), key).made_here for p in pictures]))
                for name, attack in attacks.items()}
    foreign = [render(sampler.sample_scene(np.random.default_rng(i), "train", seed=i), 128)
               for i in range(200)]
    survival["false_positive_rate"] = float(np.mean([check_provenance(p, key).made_here for p in foreign]))
    return survival


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cache-requests", type=int, default=300)
    args = parser.parse_args()
    rows, results = [], {}
    for mode, extra in (("serial (one lock)", None),
                        ("huajia (micro-batching)", ["--max-batch", "8", "--batch-wait-s",
                                                     "0.03"])):
        with Server(args.model, extra or [], serial=extra is None) as server:
            for concurrency in (1, 4, 8):
                run = throughput(server, concurrency, args.requests, args.steps, concurrency * 1000)
                results[f"{mode} c={concurrency}"] = run
                rows.append([mode, concurrency, run["images_per_s"], run["p50_s"]])
            if "batch" in mode:
                cache = cache_latency(server, args.cache_requests)
                marked = [_generate(server.url, {"prompt": p, "seed": 50 + i, "steps": args.steps})[1]
                          for i, p in enumerate(["a red circle", "一个蓝色正方形", "two green stars",
                                                 "a yellow triangle on a gray background"] * 5)]
                key = (Path(server.data) / "watermark-key").read_text().strip()
    speedup = (results["huajia (micro-batching) c=8"]["images_per_s"]
               / results["serial (one lock) c=8"]["images_per_s"])
    survival = watermark_survival(marked, key)
    report("serving", "huajia serve: throughput, cache, watermark",
           ["mode", "concurrency", "images/s", "p50 latency s"], rows,
           {"speedup_at_8": speedup, "cache_hit": cache, "watermark_survival": survival,
            "steps": args.steps, "requests": args.requests, "model": args.model,
            "omp_threads": os.environ.get("OMP_NUM_THREADS", "all")})
    print(f"speed-up at concurrency 8: {speedup:.2f}x (goal ≥ 1.8x)")
    print(f"cache hit: p50 {cache['p50_ms']:.1f} ms, p99 {cache['p99_ms']:.1f} ms "
          f"(goal ≤ 10 ms), bit-identical: {cache['bit_identical']}")
    print("watermark detected after: " + ", ".join(f"{k} {v:.0%}" for k, v in survival.items()))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
