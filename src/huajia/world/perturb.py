"""Degrade oracle pictures the way a generative model's output looks: soft, noisy, off-colour.

Used by ShapesEval's ``oracle-perturbed`` model to show that the verifier survives imperfect
pictures: Gaussian blur (σ≈1.5), JPEG (q≈30), Gaussian noise (σ≈10/255) and a small hue shift.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def hue_shift(image: Image.Image, degrees: float) -> Image.Image:
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(degrees / 360 * 256)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def perturb(image: Image.Image, seed: int, blur: float = 1.5, jpeg_quality: int = 30,
            noise: float = 10 / 255, max_hue_degrees: float = 6.0) -> Image.Image:
    rng = np.random.default_rng(seed)
    out = hue_shift(image.convert("RGB"), float(rng.uniform(-max_hue_degrees, max_hue_degrees)))
    out = out.filter(ImageFilter.GaussianBlur(blur))
    buffer = io.BytesIO()
    out.save(buffer, format="JPEG", quality=jpeg_quality)
    pixels = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32)
    pixels += rng.normal(0, noise * 255, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "RGB")
