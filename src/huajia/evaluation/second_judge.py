"""A second judge, written apart from the world's verifier, for methods that train or search
against that verifier (RL, the thinking loop): a gain that only one judge sees is suspect.

Different method, stricter rules:
- objects: pixels far from the border colour in CIELAB, opened, as connected components;
- shape: overlap with upright shape templates stretched over the object's box (not the
  radial harmonics of its outline);
- colour: the palette colour (or its texture shade) that explains most of the object's pixels
  in CIELAB (not RGB segments);
- texture: spread and orientation coherence of the luminance gradient (structure tensor);
- position: the subject's *bounding boxes* must lie wholly on the named side of the object's
  (not just the centres, with twice the verifier's margin).
Counts are exact; size is not judged. ``judge(image, spec)`` → passed.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from PIL import Image

from huajia.world import vocab
from huajia.world.render import shade_of
from huajia.world.spec import ObjectGroup, SceneSpec

FOREGROUND_DELTA_E = 18.0  # CIELAB distance from the background that marks an object pixel
MIN_AREA = 0.004  # objects smaller than this fraction of the canvas are noise
PALETTE_DELTA_E = 22.0  # a pixel this close to a palette colour (or its shade) is explained by it
SHAPES = ("circle", "square", "triangle", "star")
SOLID_SPREAD, STRIPE_COHERENCE = 20.0, 0.45
OUTLINE_LEVEL = 0.5  # the outline is drawn at this fraction of the object's contrast
MARGIN = 0.08  # relation margin, canvas fraction (the verifier uses 0.04 between centres)


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.uint8).reshape(-1, 1, 3), cv2.COLOR_RGB2LAB).reshape(
        rgb.shape).astype(np.float32) * np.array([100 / 255, 1, 1], np.float32)


@lru_cache(maxsize=1)
def _palette() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    names = tuple(c.id for c in vocab.COLOURS)
    base = np.array([c.rgb for c in vocab.COLOURS], np.float32)
    shade = np.array([shade_of(c.rgb) for c in vocab.COLOURS], np.float32)
    return names, _lab(base), _lab(shade)


@lru_cache(maxsize=64)
def _template(shape: str, w: int, h: int) -> np.ndarray:
    """The shape drawn to fill a w x h box (the renderer draws shapes upright)."""
    canvas = np.zeros((h, w), np.uint8)
    if shape == "circle":
        ys, xs = np.mgrid[0:h, 0:w]
        return ((xs - (w - 1) / 2) / (w / 2)) ** 2 + ((ys - (h - 1) / 2) / (h / 2)) ** 2 <= 1
    if shape == "square":
        return np.ones((h, w), bool)
    if shape == "triangle":
        points = [(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)]
    else:  # a five-pointed star, inner radius 0.5 of the outer
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.5)
        xs, ys = radii * np.cos(angles), radii * np.sin(angles)
        points = list(zip((xs - xs.min()) / np.ptp(xs), (ys - ys.min()) / np.ptp(ys), strict=True))
    polygon = np.array([[x * (w - 1), y * (h - 1)] for x, y in points], np.float32)
    cv2.fillPoly(canvas, [np.round(polygon * 16).astype(np.int32)], 1, shift=4)
    return canvas.astype(bool)


def _shape(blob: np.ndarray) -> str:
    """The shape whose template, stretched over the blob's bounding box, overlaps it best."""
    ys, xs = np.nonzero(blob)
    crop = blob[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(bool)
    h, w = crop.shape
    scores = {shape: (crop & _template(shape, w, h)).sum() / (crop | _template(shape, w, h)).sum()
              for shape in SHAPES}
    return max(scores, key=scores.get)


def _colour(lab_pixels: np.ndarray) -> str:
    names, base, shade = _palette()
    near_base = np.linalg.norm(lab_pixels[:, None] - base[None], axis=2) < PALETTE_DELTA_E
    near_shade = np.linalg.norm(lab_pixels[:, None] - shade[None], axis=2) < PALETTE_DELTA_E
    explained = near_base.mean(axis=0) + 0.5 * near_shade.mean(axis=0)
    return names[int(np.argmax(explained))]


def texture_spread(luminance: np.ndarray, inner: np.ndarray) -> float:
    values = cv2.GaussianBlur(luminance, (0, 0), 1.0)[inner]
    return float(np.percentile(values, 92) - np.percentile(values, 8)) if values.size >= 16 else 0.0


def _texture(luminance: np.ndarray, inner: np.ndarray) -> str:
    """Solid when the shade barely varies inside; then stripes are the pattern whose gradient
    points one way (structure-tensor coherence), dots the one that points every way."""
    if texture_spread(luminance, inner) < SOLID_SPREAD:
        return "solid"
    gy, gx = np.gradient(cv2.GaussianBlur(luminance, (0, 0), 1.0))
    jxx, jyy, jxy = (gx * gx)[inner].sum(), (gy * gy)[inner].sum(), (gx * gy)[inner].sum()
    coherence = np.hypot(jxx - jyy, 2 * jxy) / max(jxx + jyy, 1e-9)
    return "striped" if coherence > STRIPE_COHERENCE else "dotted"


def objects(image: Image.Image | np.ndarray) -> list[dict]:
    """The objects in a picture: shape, colour, texture and box (fractions of the canvas).
    Each object's outline is re-drawn at half its own contrast, so blur does not round it."""
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    side = rgb.shape[0]
    lab = _lab(cv2.GaussianBlur(rgb, (0, 0), 0.7).astype(np.float32))
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    distance = np.linalg.norm(lab - np.median(border, axis=0), axis=2)
    mask = cv2.morphologyEx((distance > FOREGROUND_DELTA_E).astype(np.uint8), cv2.MORPH_OPEN,
                            np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    luminance = lab[..., 0] * 2.55
    found = []
    for k in range(1, count):
        x, y, w, h, area = stats[k]
        if area < MIN_AREA * side * side:
            continue
        near = cv2.dilate((labels == k).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        level = np.percentile(distance[labels == k], 75) * OUTLINE_LEVEL
        blob = (near & (distance > level)).astype(np.uint8)
        count_, parts, part_stats, _ = cv2.connectedComponentsWithStats(blob, connectivity=8)
        blob = parts == 1 + int(np.argmax(part_stats[1:, cv2.CC_STAT_AREA])) if count_ > 1 else blob
        depth = cv2.distanceTransform(blob.astype(np.uint8), cv2.DIST_L2, 3)
        inner = depth >= 0.35 * depth.max()  # away from the blurred rim
        found.append({"shape": _shape(blob), "colour": _colour(lab[inner]),
                      "texture": _texture(luminance, inner),
                      "box": (x / side, y / side, (x + w) / side, (y + h) / side)})
    return found


def _matches(obj: dict, group: ObjectGroup) -> bool:
    return obj["shape"] == group.shape and all(
        getattr(group, a) is None or obj[a] == getattr(group, a) for a in ("colour", "texture"))


def _relation_holds(subjects: list[dict], objects_: list[dict], relation: str) -> bool:
    if not subjects or not objects_:
        return False
    axis = 0 if relation in ("left_of", "right_of") else 1
    low_first = relation in ("left_of", "above")
    first, second = (subjects, objects_) if low_first else (objects_, subjects)
    end_of_first = max(o["box"][axis + 2] for o in first)
    start_of_second = min(o["box"][axis] for o in second)
    centres = lambda group: np.mean([(o["box"][axis] + o["box"][axis + 2]) / 2 for o in group])  # noqa: E731
    return end_of_first <= start_of_second + 0.01 and centres(second) - centres(first) > MARGIN


def judge(image: Image.Image | np.ndarray, spec: SceneSpec) -> bool:
    """Does the picture show exactly what ``spec`` asks (counts, shapes, colours, textures,
    relations)? Backgrounds are not judged."""
    found = objects(image)
    groups = [[o for o in found if _matches(o, g)] for g in spec.groups]
    for group, matched in zip(spec.groups, groups, strict=True):
        if (len(matched) < 2) if group.count is None else (len(matched) != group.count):
            return False
    return all(_relation_holds(groups[r.subject], groups[r.object], r.relation)
               for r in spec.relations)
