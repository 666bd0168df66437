"""Dataset writing throughput (render + PNG + metadata) at 128x128, with 1 and all workers.

`huajia world dataset` must be fast enough for 100k images. Run: python benchmarks/dataset_speed.py
"""

from __future__ import annotations

import os
import tempfile
import time

from _common import report

from huajia.world.dataset import write_dataset


def main(n: int = 2000) -> None:
    rows = []
    for workers in sorted({1, os.cpu_count() or 1}):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            write_dataset(folder, n, seed=0, workers=workers)
            rate = n / (time.perf_counter() - start)
        rows.append([workers, n, round(rate, 1), round(100_000 / rate / 60, 1)])
    report("dataset_speed", "Dataset writing (128x128 PNG + metadata.jsonl)",
           ["workers", "images", "images/s", "minutes per 100k"], rows, {})


if __name__ == "__main__":
    main()
