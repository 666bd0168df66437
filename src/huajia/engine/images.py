"""The one image ↔ tensor conversion: PIL RGB images and (B, 3, H, W) tensors in [-1, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image


def to_tensor(images: Sequence[Image.Image]) -> torch.Tensor:
    """PIL images → (B, 3, H, W) float32 in [-1, 1]."""
    array = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images])
    return torch.from_numpy(array / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()


def to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] → PIL images (rounded to the nearest 8-bit value)."""
    array = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return [Image.fromarray(p.permute(1, 2, 0).cpu().numpy()) for p in array]
