"""The denoiser on the CPU, faster: a frozen TorchScript trace instead of eager Python, and
the batch split across the cores.

- A small UNet spends much of a call in Python and per-op overhead; ``torch.jit.trace`` +
  ``freeze`` removes it (about 3 s to trace, once per latent shape). Frozen weights are
  constants, so the trace is keyed by the parameters' versions and the active LoRAs and made
  again when they change (training, a LoRA); calls with extra conditioning (SDXL's added
  conditions, ControlNet residuals) or with autograd stay eager.
- torch's intra-op threads barely help small convolutions, while separate samples scale
  almost linearly, so a batch (a single picture's [uncond, cond] pair too) runs as one part
  per core, each with one intra-op thread.
benchmarks/speed.py measures both.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
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
    only; batches below ``min_batch`` and autograd runs go through unchanged), each part
    through the frozen trace when ``trace`` (and the call allows it)."""

    def __init__(self, workers: int, min_batch: int = 2, trace: bool = False,
                 state: Callable[[], tuple] = tuple, trace_after: int = 40):
        self.workers, self.min_batch = max(1, workers), min_batch
        self.traces = FrozenTraces(state, trace_after) if trace else None
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
        if torch.is_grad_enabled():
            return self._forward(sample, *args, **kwargs)
        if batch < self.min_batch or self.workers == 1:
            return self._call(sample, args, kwargs)
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
            return self._call(sample, args, kwargs)

    def _call(self, sample, args, kwargs):
        inputs = _plain_inputs(args, kwargs) if self.traces is not None else None
        traced = self.traces.get(self._module, sample, *inputs) if inputs else None
        if traced is not None:
            out = traced(sample, *inputs)
            return (out,) if kwargs.get("return_dict") is False else _Output(out)
        return self._forward(sample, *args, **kwargs)


class _Output:
    """What ``UNet2DConditionModel`` returns with ``return_dict=True``: ``.sample``."""

    def __init__(self, sample):
        self.sample = sample

    def __getitem__(self, index):
        return (self.sample,)[index]


_PLAIN_KWARGS = {"encoder_hidden_states", "timestep", "return_dict", "timestep_cond",
                 "cross_attention_kwargs", "added_cond_kwargs", "attention_mask",
                 "encoder_attention_mask", "down_block_additional_residuals",
                 "mid_block_additional_residual", "down_intrablock_additional_residuals"}


def _plain_inputs(args, kwargs):
    """(timestep, encoder_hidden_states) of a call with nothing else that matters, or None."""
    if len(args) > 2 or set(kwargs) - _PLAIN_KWARGS:
        return None
    if any(kwargs.get(k) is not None for k in _PLAIN_KWARGS - {
            "encoder_hidden_states", "timestep", "return_dict"}):
        return None
    timestep = args[0] if args else kwargs.get("timestep")
    hidden = args[1] if len(args) > 1 else kwargs.get("encoder_hidden_states")
    if not (torch.is_tensor(timestep) and torch.is_tensor(hidden)):
        return None
    return timestep, hidden


class _Plain(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, hidden):
        # the class's forward: neither the hooks around the call nor this module's own
        # replacement of it are traced in
        return type(self.unet).forward(self.unet, sample, timestep, hidden, return_dict=False)[0]


class FrozenTraces:
    """Frozen traces of a denoiser, one per input layout, dropped when its weights or the
    state ``state()`` names (the active LoRAs) change. A layout is traced once it was called
    ``after`` times (a trace costs about as much as 150 calls save, so a one-off picture stays
    eager) or at once after ``trace_next()`` (a server's warm-up)."""

    def __init__(self, state: Callable[[], tuple] = tuple, after: int = 40):
        self.state, self.after = state, after
        self._traces: dict[tuple, torch.jit.ScriptModule] = {}
        self._calls: dict[tuple, int] = {}
        self._stamp: tuple | None = None
        self._now = False
        self._lock = threading.Lock()

    def trace_next(self) -> None:
        self._now = True

    def get(self, module, sample, timestep, hidden):
        """The trace for a plain call (see ``_plain_inputs``), or None: stay eager."""
        if type(module).__name__ != "UNet2DConditionModel":
            return None
        key = (tuple(sample.shape[1:]), sample.dtype, str(sample.device), timestep.ndim,
               tuple(hidden.shape[1:]))
        with self._lock:  # the split's parts ask at once
            versions = [p._version for p in module.parameters()]
            stamp = (self.state(), sum(versions), len(versions))
            if stamp != self._stamp:
                self._traces, self._calls, self._stamp = {}, {}, stamp
            if key not in self._traces:
                self._calls[key] = calls = self._calls.get(key, 0) + 1
                if calls <= self.after and not self._now:
                    return None
                self._traces[key], self._now = self._trace(module, sample, timestep, hidden), False
            return self._traces[key]

    @staticmethod
    def _trace(module, sample, timestep, hidden):
        training = module.training
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer notes on shape-dependent branches
                traced = torch.jit.trace(_Plain(module).eval(), (sample, timestep, hidden),
                                         check_trace=False)
                frozen = torch.jit.freeze(traced)
                for _ in range(2):  # the profiling executor optimises after two runs
                    frozen(sample, timestep, hidden)
                return frozen
        finally:
            module.train(training)


def _joined(outputs: list):
    first = outputs[0]
    if isinstance(first, tuple):
        return (torch.cat([o[0] for o in outputs]), *first[1:])
    first.sample = torch.cat([o.sample for o in outputs])
    return first
