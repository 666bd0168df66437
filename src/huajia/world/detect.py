"""Object detection in shapes-world pictures with classic computer vision (no weights).

Background = the median border colour; objects = connected blobs that differ from it. For each
blob, the colour is the palette colour whose colour→shade segment best explains the inside
pixels (blur mixes the two along that segment); the texture comes from how the shade varies
inside (gradient orientations: diagonal stripes, axis-aligned checks, round dots); the outline is
taken at half the colour's contrast (so blur does not grow it); the shape from the harmonics of
the outline's radial profile (3 triangle, 4 square, 5 star, 6 hexagon, none circle); the size
from the area. Thresholds were set on measured feature distributions of clean and degraded
renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image

from huajia.world import vocab
from huajia.world.render import STAR_INNER, shade_of

FOREGROUND_DISTANCE = 48.0  # RGB distance from the background that starts a blob
MIN_AREA_FRACTION = 0.0025  # blobs smaller than this (of the canvas) are noise
HEXAGON_IN_PHASE = 0.016  # in-phase 6th harmonic above which a round blob is a hexagon
MIXED_PIXEL_RESIDUAL = 45.0  # RGB distance from the colour's segment: a background mix
# Texture thresholds, set from feature distributions of clean and degraded renders.
TEXTURE_MIN_STD = 0.125  # spread of shade positions below which an object is solid
STRIPE_SCORE = 0.3  # diagonal minus axial gradient share above which it is stripes
CHECKER_SCORE = 0.4  # mean shade share + 0.6 x axial share above which it is checks


@dataclass(frozen=True)
class Detection:
    shape: str
    colour: str
    texture: str
    size: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels
    cx: float  # centre, as a fraction of the canvas
    cy: float
    radius: float  # the drawing radius that gives the blob's area, as a fraction of the side
    area: int


@lru_cache(maxsize=1)
def _segments() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Each object colour as the RGB segment from the colour to its texture shade."""
    starts, ends, names = [], [], []
    for colour in vocab.COLOURS:
        assert isinstance(colour, vocab.Colour)
        starts.append(colour.rgb)
        ends.append(shade_of(colour.rgb))
        names.append(colour.id)
    return np.array(starts, np.float32), np.array(ends, np.float32), tuple(names)


def _background(pixels: np.ndarray) -> np.ndarray:
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).astype(np.float32)
    return np.median(border, axis=0)


def _radial_harmonics(contour: np.ndarray, cx: float, cy: float) -> np.ndarray:
    """Complex harmonics 3..6 of the outline's distance-from-centre profile, relative to the
    mean distance (a profile R·(1 + ε·cos kθ) gives ε at harmonic k)."""
    points = contour.reshape(-1, 2).astype(np.float64)
    angle = np.arctan2(points[:, 1] - cy, points[:, 0] - cx)
    radius = np.hypot(points[:, 0] - cx, points[:, 1] - cy)
    order = np.argsort(angle)
    grid = np.linspace(-np.pi, np.pi, 128, endpoint=False)
    profile = np.interp(grid, angle[order], radius[order], period=2 * np.pi)
    shifted = np.fft.rfft(np.roll(profile, -64))  # start the profile at θ = 0
    return shifted[3:7] / len(profile) / max(profile.mean(), 1e-6) * 2


def _classify_shape(contour: np.ndarray, cx: float, cy: float) -> str:
    """Stars ring at harmonic 5 of the radial profile, triangles at 3, squares at 4, hexagons
    at 6; circles at none. Squares (corners at 45°) and hexagons (flat top) are read in phase,
    which the pixel noise of a small, low-contrast or striped circle rarely fakes. Thresholds
    come from clean and degraded renders (tests/world/test_detect.py checks them)."""
    h3, h4, h5, h6 = _radial_harmonics(contour, cx, cy)
    if abs(h5) > 0.08:
        return "star"
    if abs(h3) > 0.08:
        return "triangle"
    if -h4.real > 0.06:
        return "square"
    return "hexagon" if h6.real > HEXAGON_IN_PHASE else "circle"


# Area of each shape drawn with radius 1 (it fills a 2 x 2 box): size is read from the area,
# which the half-contrast outline keeps under blur (a star's points shrink, its notches fill).
_UNIT_AREA = {"circle": np.pi, "square": 4.0, "triangle": np.sqrt(3), "hexagon": 1.5 * np.sqrt(3),
              "star": 10 * 0.5 * STAR_INNER * np.sin(np.pi / 5)}


def _segment_fit(pixels: np.ndarray, only: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For every colour (or just colour ``only``): each pixel's position t along its
    colour→shade segment (0 = colour, 1 = shade) and its distance from it. Shapes (K, N)."""
    starts, ends, _ = _segments()
    if only is not None:
        starts, ends = starts[only:only + 1], ends[only:only + 1]
    axis = ends - starts  # (K, 3)
    rel = pixels[None, :, :] - starts[:, None, :]  # (K, N, 3)
    t = np.clip((rel @ axis[:, :, None])[..., 0] / (axis * axis).sum(1)[:, None], 0, 1)
    residual = np.linalg.norm(rel - t[..., None] * axis[:, None, :], axis=2)
    return t, residual


def _classify_colour(pixels: np.ndarray) -> int:
    """Index of the colour whose colour→shade segment explains the pixels best (blur mixes the
    two, so a textured object's pixels lie along that segment)."""
    step = max(1, len(pixels) // 256)  # a few hundred pixels decide as well as thousands
    _, residual = _segment_fit(pixels[::step])
    return int(np.argmin(np.median(residual, axis=1)))


def _classify_texture(t_map: np.ndarray, inner: np.ndarray) -> str:
    """Solid, striped, dotted or checkered from the shade pattern ``t_map`` inside the object.

    Gradient orientations tell the patterns apart: diagonal stripes point one way (sin 2θ ≈ 1,
    cos 4θ ≈ -1), checks along the axes (cos 4θ ≈ 1), dots every way; checks cover half the
    object with shade, dots about a fifth.
    """
    smooth = cv2.GaussianBlur(t_map, (0, 0), 0.8)
    values = smooth[inner]
    if values.size < 12 or float(np.std(values)) < TEXTURE_MIN_STD:
        return "solid"
    gy, gx = np.gradient(smooth)
    magnitude = (gx * gx + gy * gy)[inner]
    theta = np.arctan2(gy, gx)[inner]
    weight = magnitude / max(float(magnitude.sum()), 1e-9)
    diagonal = float((weight * np.sin(2 * theta)).sum())
    axial = float((weight * np.cos(4 * theta)).sum())
    if diagonal - axial > STRIPE_SCORE:
        return "striped"
    return "checkered" if float(values.mean()) + 0.6 * axial > CHECKER_SCORE else "dotted"


def _size_of(radius: float) -> str:
    small, medium, large = (vocab.SIZE_RADIUS[s] for s in ("small", "medium", "large"))
    if radius < (small * medium) ** 0.5:
        return "small"
    return "medium" if radius < (medium * large) ** 0.5 else "large"


def _object_mask(distance: np.ndarray, component: np.ndarray, level: float) -> np.ndarray | None:
    """The blob's outline at half of ``level`` (its contrast to the background, so the outline
    stays put under blur), holes filled; None if nothing is left."""
    mask = ((distance > 0.5 * level) & component).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, [max(contours, key=cv2.contourArea)], -1, 1, thickness=-1)
    return filled


def _detect_one(pixels: np.ndarray, distance: np.ndarray, component: np.ndarray,
                background: np.ndarray, origin: tuple[int, int],
                canvas: tuple[int, int]) -> Detection | None:
    """Classify one blob from crops around it: colour and texture first (from the blob's inside),
    then the outline at half the colour's contrast, then shape and size from the outline.
    ``origin`` is the crop's top-left corner and ``canvas`` the picture's (width, height)."""
    blob, kernel = component.astype(np.uint8), np.ones((3, 3), np.uint8)
    core = cv2.erode(blob, kernel, iterations=2) > 0  # deep inside, away from blurred edges
    inner = core if core.sum() >= 30 else cv2.erode(blob, kernel, iterations=1) > 0
    if inner.sum() < 12:  # a small object's texture needs a wider look
        inner = component
    if core.sum() < 12:
        core = inner
    index = _classify_colour(pixels[core].astype(np.float32))
    colour = _segments()[2][index]
    t, residual = (a[0] for a in _segment_fit(pixels[inner].astype(np.float32), only=index))
    t_map = np.zeros(component.shape, np.float32)
    t_map[inner] = t
    pure = inner.copy()
    pure[inner] = residual < MIXED_PIXEL_RESIDUAL  # leave out pixels mixed with the background
    texture = _classify_texture(t_map, pure if pure.sum() >= 12 else inner)
    rgb = np.array(vocab.colour_rgb(colour), np.float32)
    level = float(np.linalg.norm(rgb - background))
    if texture != "solid":
        shade = np.array(shade_of(vocab.colour_rgb(colour)), np.float32)
        level = min(level, float(np.linalg.norm(shade - background)))
    mask = _object_mask(distance, component, max(level, FOREGROUND_DISTANCE))
    if mask is None or mask.sum() < 6:
        return None
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    x, y, w, h = cv2.boundingRect(contour)
    moments = cv2.moments(mask, binaryImage=True)
    cx, cy = moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]
    shape = _classify_shape(contour, cx, cy)
    (ox, oy), (width, height) = origin, canvas
    radius = float(np.sqrt(mask.sum() / _UNIT_AREA[shape])) / width
    return Detection(shape=shape, colour=colour, texture=texture, size=_size_of(radius),
                     box=(x + ox, y + oy, x + ox + w, y + oy + h), cx=(cx + ox) / width,
                     cy=(cy + oy) / height, radius=radius, area=int(mask.sum()))


def detect(image: Image.Image | np.ndarray) -> tuple[str, list[Detection]]:
    """Background colour name and every object found in ``image``."""
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    background = _background(pixels)
    distance = np.sqrt(((pixels.astype(np.float32) - background) ** 2).sum(axis=2))
    foreground = (distance > FOREGROUND_DISTANCE).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(foreground, connectivity=4)
    min_area = MIN_AREA_FRACTION * pixels.shape[0] * pixels.shape[1]
    found = []
    for label in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area < min_area:
            continue
        # work in the blob's box (plus a margin) so cost scales with the object, not the canvas
        x0, y0 = max(x - 2, 0), max(y - 2, 0)
        x1, y1 = min(x + w + 2, pixels.shape[1]), min(y + h + 2, pixels.shape[0])
        component = labels[y0:y1, x0:x1] == label
        detection = _detect_one(pixels[y0:y1, x0:x1], distance[y0:y1, x0:x1], component,
                                background, (x0, y0), (pixels.shape[1], pixels.shape[0]))
        if detection is not None:
            found.append(detection)
    return _background_name(background), found


def _background_name(rgb: np.ndarray) -> str:
    best = min(vocab.BACKGROUNDS, key=lambda c: float(((np.array(c.rgb) - rgb) ** 2).sum()))
    return best.id
