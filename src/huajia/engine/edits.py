"""Masks for edits (inpainting) and variations: reading them as users give them, and putting the
untouched pixels back.

A mask is white where the picture is painted again (A1111's convention), or, as OpenAI's
``/v1/images/edits`` has it, an RGBA picture that is transparent there. Without a mask the
picture's own transparent pixels are the area (OpenAI again). Outside the mask the result keeps
the original pixels exactly: the repainted picture is blended in only inside the mask, with a
few pixels of feathering along its inner edge.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageFilter

from huajia.errors import HuajiaError

MIN_SIDE, MAX_SIDE = 64, 2048
FEATHER_PX = 2  # the blend's soft inner edge (A1111's "Mask blur")


def edit_size(image: Image.Image, size: tuple[int, int] | None,
              multiple: int = 8) -> tuple[int, int]:
    """The size an edit paints at: the asked size, or the picture's rounded to ``multiple``
    (the model's size multiple)."""
    width, height = size or (max(multiple, round(image.width / multiple) * multiple),
                             max(multiple, round(image.height / multiple) * multiple))
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise HuajiaError(f"the picture is {image.width}x{image.height}; edits work from "
                          f"{MIN_SIDE} to {MAX_SIDE} pixels a side")
    return width, height


def read_mask(image: Image.Image, mask: Image.Image | None) -> np.ndarray:
    """(H, W) float mask in 0..1, 1 where the picture is painted again."""
    if mask is None:
        if "A" not in image.getbands() or image.getchannel("A").getextrema()[0] == 255:
            raise HuajiaError("no mask, and the picture has no transparent pixels to repaint; "
                              "give a mask (white or transparent where to paint)")
        return 1.0 - np.asarray(image.getchannel("A"), dtype=np.float32) / 255.0
    if mask.size != image.size:
        raise HuajiaError(f"the mask is {mask.width}x{mask.height} but the picture is "
                          f"{image.width}x{image.height}; give a mask of the picture's size")
    if "A" in mask.getbands() and mask.getchannel("A").getextrema()[0] < 255:
        values = 1.0 - np.asarray(mask.getchannel("A"), dtype=np.float32) / 255.0
    else:
        values = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
    values = (values > 0.5).astype(np.float32)
    if not values.any():
        raise HuajiaError("the mask is empty: nothing to repaint (white, or transparent, marks "
                          "the area)")
    return values


def latent_mask(mask: np.ndarray, latent_shape: tuple[int, int], device) -> torch.Tensor:
    """The mask at the latents' size; a latent cell is repainted if any of its pixels is."""
    tensor = torch.from_numpy(mask)[None, None]
    pooled = torch.nn.functional.adaptive_max_pool2d(tensor, latent_shape)
    return pooled.to(device)


def composite(painted: Image.Image, original: Image.Image, mask: np.ndarray,
              feather: int = FEATHER_PX) -> Image.Image:
    """``painted`` inside the mask, ``original`` exactly outside it."""
    hard = Image.fromarray((mask * 255).astype(np.uint8))
    soft = np.asarray(hard.filter(ImageFilter.GaussianBlur(feather)), dtype=np.float32) / 255.0
    weight = (soft * mask)[..., None]  # feather only inwards: outside stays the original
    a = np.asarray(painted.convert("RGB"), dtype=np.float32)
    b = np.asarray(original.convert("RGB"), dtype=np.float32)
    return Image.fromarray(np.rint(a * weight + b * (1 - weight)).astype(np.uint8))
