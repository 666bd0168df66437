"""Deterministic, anti-aliased renderer: ``Scene`` → ``PIL.Image``.

Shapes are drawn at 4x (2x above 256 px) and box-filtered down, which anti-aliases edges.
Textures are a second shade of the object's colour (darker for light colours, lighter for dark
ones) so that a textured object stays one connected blob that differs from the background.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from huajia.errors import HuajiaError
from huajia.world.spec import PlacedObject, Scene
from huajia.world.vocab import colour_rgb

MIN_SIDE, MAX_SIDE, DEFAULT_SIDE = 64, 512, 128
# Texture geometry, in output pixels at 128 px (scaled with the canvas).
STRIPE_PERIOD = 16.0  # along x+y, so about 11 px across the diagonal stripes
DOT_SPACING, DOT_RADIUS = 12.0, 3.0
CHECK_CELL = 8.0
STAR_INNER = 0.5  # inner/outer radius of the five-pointed star


def check_side(side: int) -> int:
    if not isinstance(side, int) or not MIN_SIDE <= side <= MAX_SIDE:
        raise HuajiaError(f"image size {side} is out of range; use {MIN_SIDE} to {MAX_SIDE} pixels")
    return side


def shade_of(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """The texture's second colour: darker for light colours, lighter for dark ones."""
    luminance = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255
    if luminance > 0.3:
        return tuple(int(c * 0.5) for c in rgb)  # type: ignore[return-value]
    return tuple(int(c + (255 - c) * 0.55) for c in rgb)  # type: ignore[return-value]


def _unit_polygon(shape: str) -> list[tuple[float, float]]:
    """Vertices in [-1, 1]² (y down), centred on the bounding box."""
    if shape == "square":
        return [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    if shape == "triangle":
        h = math.sqrt(3) / 2
        return [(0, -h), (1, h), (-1, h)]
    if shape == "hexagon":
        return [(math.cos(k * math.pi / 3), math.sin(k * math.pi / 3)) for k in range(6)]
    if shape == "star":
        points = []
        for k in range(10):
            radius = 1.0 if k % 2 == 0 else STAR_INNER
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((radius * math.cos(angle), radius * math.sin(angle) + 0.095))
        return points
    raise HuajiaError(f"unknown shape '{shape}'")


def _shape_mask(obj: PlacedObject, box_side: int) -> Image.Image:
    mask = Image.new("L", (box_side, box_side), 0)
    draw = ImageDraw.Draw(mask)
    half = box_side / 2
    r = half - 1  # keep one pixel of air inside the box
    if obj.shape == "circle":
        draw.ellipse((half - r, half - r, half + r, half + r), fill=255)
    else:
        draw.polygon([(half + x * r, half + y * r) for x, y in _unit_polygon(obj.shape)], fill=255)
    return mask


def _texture(obj: PlacedObject, box_side: int, px: float) -> np.ndarray:
    """(H, W, 3) uint8 fill for the object's box; ``px`` = supersampled pixels per 128-px pixel.

    Patterns are anchored on the object's centre (a dot, a check, a stripe edge there),
    so even a small object always shows its texture."""
    primary = np.array(colour_rgb(obj.colour), dtype=np.uint8)
    if obj.texture == "solid":
        return np.broadcast_to(primary, (box_side, box_side, 3))
    shade = np.array(shade_of(tuple(int(c) for c in primary)), dtype=np.uint8)
    ys, xs = np.mgrid[0:box_side, 0:box_side].astype(np.float32) - box_side / 2
    if obj.texture == "striped":
        period = STRIPE_PERIOD * px
        second = ((xs + ys + period / 4) % period) < period / 2
    elif obj.texture == "dotted":
        spacing = DOT_SPACING * px
        dx = ((xs + spacing / 2) % spacing) - spacing / 2
        dy = ((ys + spacing / 2) % spacing) - spacing / 2
        second = dx * dx + dy * dy < (DOT_RADIUS * px) ** 2
    elif obj.texture == "checkered":
        cell = CHECK_CELL * px
        second = (((xs + cell / 2) // cell + (ys + cell / 2) // cell) % 2) == 1
    else:
        raise HuajiaError(f"unknown texture '{obj.texture}'")
    return np.where(second[..., None], shade, primary)


def render(scene: Scene, side: int = DEFAULT_SIDE) -> Image.Image:
    """Draw ``scene`` on a ``side`` x ``side`` canvas. Same scene and side → same pixels."""
    check_side(side)
    ss = 4 if side <= 256 else 2
    big = side * ss
    px = big / 128  # texture geometry is defined at 128 px and scales with the canvas
    canvas = Image.new("RGB", (big, big), colour_rgb(scene.background))
    for obj in scene.objects:
        r = obj.radius * big
        x0, y0 = round(obj.cx * big - r), round(obj.cy * big - r)
        box_side = max(4, round(2 * r))
        mask = _shape_mask(obj, box_side)
        fill = Image.fromarray(np.ascontiguousarray(_texture(obj, box_side, px)), "RGB")
        canvas.paste(fill, (x0, y0), mask)
    return canvas.reduce(ss)
