"""huajia on Ray Serve against the single-process server on this machine: images/s with 1 and
2 model replicas (CPU-bound, so against the plain server at the same total threads), Ray's own
cost per request (cache-hit latency through Ray's proxy and ingress vs the plain server), and
start-up time (process start to the first healthy answer).

    python benchmarks/ray_scale.py [--requests 24] [--concurrency 8] [--cache-requests 200]
→ benchmarks/results/ray_scale.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml
from _common import Server, report

from serving import cache_latency, throughput


def _ray_config(replicas: int) -> str:
    path = Path(tempfile.mkdtemp(prefix="huajia-ray-")) / "ray.yaml"
    path.write_text(yaml.safe_dump({"model": {"num_replicas": replicas,
                                              "ray_actor_options": {"num_cpus": 1}},
                                    "in_flight": 8}))
    return str(path)


MODES = {  # name → (total torch threads, server flags, environment)
    "plain, 1 thread": (1, [], {"OMP_NUM_THREADS": "1"}),
    "plain, 2 threads": (2, [], {"OMP_NUM_THREADS": "2"}),
    "ray, 1 replica x 1 thread": (1, ["--ray", "local", "--ray-config", "1"], {}),
    "ray, 2 replicas x 1 thread": (2, ["--ray", "local", "--ray-config", "2"], {}),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--steps", type=int, default=14)
    parser.add_argument("--cache-requests", type=int, default=200)
    args = parser.parse_args()
    rows, results = [], {}
    for offset, (mode, (threads, flags, env)) in enumerate(MODES.items()):
        flags = [_ray_config(int(f)) if f.isdigit() else f for f in flags]
        with Server(args.model, ["--max-batch", "8", *flags], env=env) as server:
            run = throughput(server, args.concurrency, args.requests, args.steps,
                             10_000 * (offset + 1))
            cache = cache_latency(server, args.cache_requests)
        results[mode] = {"threads": threads, "ready_s": server.ready_s, **run,
                         "cache_hit": cache}
        rows.append([mode, threads, run["images_per_s"], run["p50_s"], cache["p50_ms"],
                     cache["p99_ms"], server.ready_s])
    plain1, plain2 = results["plain, 1 thread"], results["plain, 2 threads"]
    ray1, ray2 = results["ray, 1 replica x 1 thread"], results["ray, 2 replicas x 1 thread"]
    summary = {
        "ray_1_vs_plain_1_thread": ray1["images_per_s"] / plain1["images_per_s"],
        "ray_2_replicas_vs_plain_2_threads": ray2["images_per_s"] / plain2["images_per_s"],
        "ray_2_vs_1_replica": ray2["images_per_s"] / ray1["images_per_s"],
        "cache_hit_overhead_p50_ms": ray2["cache_hit"]["p50_ms"] - plain2["cache_hit"]["p50_ms"],
        "cache_hit_overhead_p99_ms": ray2["cache_hit"]["p99_ms"] - plain2["cache_hit"]["p99_ms"],
    }
    report("ray_scale", "huajia on Ray Serve vs one process (this machine)",
           ["mode", "threads", "images/s", "p50 latency s", "cache hit p50 ms",
            "cache hit p99 ms", "start s"], rows,
           {"results": results, "summary": summary, "requests": args.requests,
            "concurrency": args.concurrency, "steps": args.steps, "model": args.model})
    for name, value in summary.items():
        print(f"{name}: {value:.3f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
