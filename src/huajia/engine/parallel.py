"""Several CPU cores on one denoiser call: the batch is split in parts, each run on its own
thread with one intra-op thread. A small UNet's convolutions scale poorly across threads
inside one op, while separate samples scale almost linearly (benchmarks/speed.py measures
both); so a micro-batch is split, and a single picture's CFG pair keeps torch's own threads.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch


def split_rows(value, batch: int, part: slice):
    """``value`` with every tensor whose first dimension is the batch cut to ``part`` (also
    inside dicts, lists and tuples: SDXL's added conditions, ControlNet residuals)."""
    if torch.is_tensor(value):
        return value[part] if value.ndim and value.shape[0] == batch else value
    if isinstance(value, dict):
        return {k: split_rows(v, batch, part) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(split_rows(v, batch, part) for v in value)
    return value


class SplitBatch:
    """A model hook that runs the denoiser's batch as ``workers`` parts in parallel (inference
    only; batches below ``min_batch`` and autograd runs go through unchanged)."""

    def __init__(self, workers: int, min_batch: int = 4):
        self.workers, self.min_batch = workers, min_batch
        self._pool: ThreadPoolExecutor | None = None
        self._module: torch.nn.Module | None = None
        self._forward = None
        self._depth = 0  # sessions inside sessions (thinking paints parts) attach once

    def attach(self, denoiser: torch.nn.Module) -> None:
        self._depth += 1
        if self._depth == 1:
            self._module, self._forward = denoiser, denoiser.forward
            # an instance attribute: forward hooks (regional prompts) still run around it
            denoiser.forward = self._split_forward

    def close(self) -> None:
        self._depth = max(0, self._depth - 1)
        if self._depth == 0 and self._module is not None:
            if "forward" in vars(self._module):
                del self._module.forward
            self._module = self._forward = None

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def _split_forward(self, sample, *args, **kwargs):
        batch = sample.shape[0]
        if batch < self.min_batch or torch.is_grad_enabled():
            return self._forward(sample, *args, **kwargs)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="huajia-split")
        size = -(-batch // self.workers)
        parts = [slice(start, min(batch, start + size)) for start in range(0, batch, size)]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            futures = [self._pool.submit(self._run, split_rows(sample, batch, part),
                                         split_rows(args, batch, part),
                                         split_rows(kwargs, batch, part)) for part in parts]
            outputs = [future.result() for future in futures]
        finally:
            torch.set_num_threads(threads)
        return _joined(outputs)

    def _run(self, sample, args, kwargs):
        with torch.no_grad():  # grad mode is per thread
            return self._forward(sample, *args, **kwargs)


def _joined(outputs: list):
    first = outputs[0]
    if isinstance(first, tuple):
        return (torch.cat([o[0] for o in outputs]), *first[1:])
    first.sample = torch.cat([o.sample for o in outputs])
    return first
