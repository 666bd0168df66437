"""Aspect-ratio buckets for ``huajia train lora --buckets`` (kohya's and SimpleTuner's way):
sizes of about the training side's area, each side a multiple of the family's size multiple
(the VAE's scale times the patch, and 8), aspects up to ``MAX_RATIO``; each picture goes to the bucket
of nearest aspect (in log ratio), scaled to cover it and centre-cropped, and a batch holds
pictures of one bucket."""

from __future__ import annotations

import math

from PIL import Image

from huajia.errors import HuajiaError

MAX_RATIO = 2.0  # the widest bucket is 2:1 (and the tallest 1:2)


def bucket_sizes(family, pipe, side: int) -> list[tuple[int, int]]:
    """(W, H) sizes of at most ``side``² pixels, as long as the multiple allows at each
    shorter side, tall and wide alike, that the family can paint; the square among them."""
    multiple = bucket_multiple(family, pipe)
    area, sizes = side * side, set()
    for short in range(multiple, side + 1, multiple):
        long = area // short // multiple * multiple
        if long / short > MAX_RATIO:
            continue
        for size in ((short, long), (long, short)):
            try:
                family.check_size(pipe, size)
            except HuajiaError:
                continue
            sizes.add(size)
    if (side, side) not in sizes:
        raise HuajiaError(f"--buckets: {family.label} cannot paint {side}x{side}; choose a "
                          f"--resolution that is a multiple of {multiple}")
    return sorted(sizes)


def bucket_multiple(family, pipe) -> int:
    """What each side of a bucket is a multiple of: the family's multiple, and 8 (diffusers'
    pipelines ask 8 whatever the VAE, which a small test VAE's scale may not be)."""
    return math.lcm(family.size_multiple(pipe), 8)


def nearest_bucket(size: tuple[int, int], sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect is nearest ``size``'s (W, H), in log ratio; ties: the squarer."""
    aspect = math.log(size[0] / size[1])
    return min(sizes, key=lambda s: (abs(math.log(s[0] / s[1]) - aspect), abs(math.log(s[0] / s[1]))))


def cover_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` scaled to cover ``size`` (W, H) and cropped at its centre."""
    width, height = size
    scale = max(width / image.width, height / image.height)
    w, h = max(width, round(image.width * scale)), max(height, round(image.height * scale))
    left, top = (w - width) // 2, (h - height) // 2
    return image.resize((w, h), Image.Resampling.BICUBIC).crop((left, top, left + width, top + height))
