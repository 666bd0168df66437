"""Mixed precision for training (``train lora --precision``, ``train rl --precision``): the
weights that learn stay fp32 (the master copy the optimizer steps), the forward passes run under
autocast in bf16 or fp16. bf16 autocast works on a CPU too; fp16 needs a GPU here."""

from __future__ import annotations

from contextlib import nullcontext

from huajia.errors import HuajiaError

PRECISIONS = ("fp32", "bf16", "fp16")


def check_precision(precision: str) -> None:
    """Refuse, in one line and before any work, a precision this machine cannot train in."""
    import torch

    if precision == "fp16" and not torch.cuda.is_available():
        raise HuajiaError("--precision fp16 needs a GPU (no CUDA device here); use bf16 (CPU "
                          "autocast) or fp32")


def autocast(precision: str, device):
    """The forward passes' autocast context for ``precision`` on ``device`` (fp32: none)."""
    import torch

    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(torch.device(device).type, dtype=dtype)
