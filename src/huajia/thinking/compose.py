"""Compose: paint a wrong region's sub-caption on a canvas of its own, check it, paste it in.

Repainting inside a region's mask rarely moves an object: the model puts things where it
likes, not where the plan says, so a missing or misplaced object stays missing. A region's
sub-caption alone ("two red squares") is a much easier picture than the whole scene. So it is
painted alone (a few seeds, each checked by the same critic against that region's part of the
plan), its objects are cut from their plain background and placed in the region's box, and
the painting goes on from the composite. This is a layout-to-collage step (as in
LayoutGPT/collage diffusion pipelines); it assumes the sub-picture shows its objects on a
background of one colour, which is what a sub-caption without a background asks for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from huajia.thinking.plan import Box, Plan, Region
from huajia.world import captions
from huajia.world.detect import MIN_AREA_FRACTION
from huajia.world.spec import Relation, SceneSpec

OBJECT_TOLERANCE = 48  # RGB distance from the background above which a pixel is an object
MARGIN = 0.04  # of the canvas, kept free inside a region's box
# share of a picture's outermost pixels that must match its background colour for objects to
# be cut out of it (a photo-like background from a real checkpoint fails, and composing is
# then skipped for repainting in place)
PLAIN_BORDER = 0.8
# colours a part is painted in when the prompt leaves its colour open: any colour satisfies
# such a prompt, a concrete one is an easier picture, and a new one on each try spreads the tries
# (the embedded model before its colour fine-tune even left the canvas empty for 一个圆形)
OPEN_COLOURS = ("red", "blue", "green", "yellow", "purple", "orange")


@dataclass(frozen=True)
class Part:
    """A checked sub-picture: the image, its score, the seed it was painted with, and whether
    the critic found it right."""

    image: Image.Image | None  # None: the region as painted was already right
    score: float
    seed: int
    satisfied: bool
    tries: int = 0  # pictures of this region painted alone so far (the next seed follows)
    caption: str = ""  # what was painted (the sub-caption, open colours filled in)


def sub_plan(plan: Plan, region: Region) -> Plan | None:
    """The part of ``plan`` one region must show, as a one-region plan (None: the plan has no
    scene spec, e.g. bands that all carry the whole prompt, so there is nothing to cut out)."""
    if plan.spec is None or not region.groups:
        return None
    index = {g: k for k, g in enumerate(region.groups)}
    groups = tuple(plan.spec.groups[g] for g in region.groups)
    relations = tuple(Relation(index[r.subject], r.relation, index[r.object])
                      for r in plan.spec.relations if r.subject in index and r.object in index)
    whole = (0.0, 0.0, 1.0, 1.0)
    return Plan(region.caption, plan.lang,
                (Region(0, whole, region.caption, tuple(range(len(groups)))),),
                SceneSpec(groups, relations))


def part_caption(sub: Plan, attempt: int) -> str:
    """What to paint for a part: the sub-plan's caption with open colours filled in, a
    different colour on each attempt (the sub-plan's own caption when its colours are set)."""
    if sub.spec is None or all(g.colour for g in sub.spec.groups):
        return sub.regions[0].caption
    groups = tuple(g if g.colour else
                   replace(g, colour=OPEN_COLOURS[(attempt + i) % len(OPEN_COLOURS)])
                   for i, g in enumerate(sub.spec.groups))
    return captions.caption(replace(sub.spec, groups=groups),
                            "en_plain" if sub.lang == "en" else "zh_plain")


def border_colour(pixels: np.ndarray) -> np.ndarray:
    """Median colour of the outermost pixels: the background of a plain-background picture."""
    edge = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return np.median(edge, axis=0)


def plain_background(pixels: np.ndarray) -> bool:
    """Whether the picture's border is (mostly) one colour, so objects can be cut out of it."""
    edge = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).astype(np.float32)
    close = np.abs(edge - np.median(edge, axis=0)).max(axis=1) <= OBJECT_TOLERANCE
    return float(close.mean()) >= PLAIN_BORDER


def object_mask(pixels: np.ndarray, tolerance: float = OBJECT_TOLERANCE) -> np.ndarray:
    """(H, W) bool: pixels that differ from the picture's background colour."""
    distance = np.abs(pixels.astype(np.float32) - border_colour(pixels)).max(axis=2)
    return distance > tolerance


def without_specks(mask: np.ndarray) -> np.ndarray:
    """``mask`` without the blobs the verifier counts as noise (``MIN_AREA_FRACTION`` of the
    canvas). A speck far from the object would stretch the cut's bounds, and the object pasted
    into its box shrank to a fleck."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    smallest = MIN_AREA_FRACTION * mask.size
    kept = [k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= smallest]
    return np.isin(labels, kept)


def objects_in(pixels: np.ndarray, box: Box) -> np.ndarray:
    """(H, W) bool: the objects whose centre lies in ``box``, whole (with a soft edge), even
    where they reach out of it. Regions own objects by their centres, as the verifier places
    them."""
    import cv2

    mask = object_mask(pixels)
    count, labels, _, centres = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    height, width = mask.shape
    inside = [k for k in range(1, count)
              if box[0] <= centres[k][0] / width < box[2]
              and box[1] <= centres[k][1] / height < box[3]]
    grown = cv2.dilate(np.isin(labels, inside).astype(np.uint8), np.ones((5, 5), np.uint8))
    return grown.astype(bool)


def isolate(image: Image.Image, box: Box) -> Image.Image:
    """Only the objects that ``box`` owns, on the background colour: the region as a picture
    of its own, to judge against its part of the plan."""
    pixels = np.asarray(image.convert("RGB"))
    out = np.empty_like(pixels)
    out[:] = border_colour(pixels).astype(np.uint8)
    keep = objects_in(pixels, box)
    out[keep] = pixels[keep]
    return Image.fromarray(out)


def clear(pixels: np.ndarray, box: Box) -> np.ndarray:
    """``pixels`` without the objects that ``box`` owns (erased to the background colour); an
    object of a neighbouring region that reaches into the box stays whole."""
    out = pixels.copy()
    out[objects_in(pixels, box)] = border_colour(pixels).astype(np.uint8)
    return out


def paste(canvas: Image.Image, part: Image.Image, box: Box) -> Image.Image | None:
    """``canvas`` without the objects of ``box`` (see ``clear``) and with the objects of
    ``part`` placed in the box's middle (shrunk to fit, never enlarged). None: ``part`` shows
    no object, or either picture lacks a plain background to cut objects from."""
    source = np.asarray(part.convert("RGB").resize(canvas.size, Image.Resampling.BICUBIC))
    mask = without_specks(object_mask(source))
    if not mask.any() or not plain_background(source) or \
            not plain_background(np.asarray(canvas.convert("RGB"))):
        return None
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    cut, cut_mask = source[top:bottom, left:right], mask[top:bottom, left:right]
    width, height = canvas.size
    x0, y0 = int((box[0] + MARGIN) * width), int((box[1] + MARGIN) * height)
    x1, y1 = int((box[2] - MARGIN) * width), int((box[3] - MARGIN) * height)
    scale = min(1.0, (x1 - x0) / cut.shape[1], (y1 - y0) / cut.shape[0])
    size = (max(1, round(cut.shape[1] * scale)), max(1, round(cut.shape[0] * scale)))
    cut = np.asarray(Image.fromarray(cut).resize(size, Image.Resampling.BICUBIC))
    cut_mask = np.asarray(Image.fromarray(cut_mask).resize(size, Image.Resampling.NEAREST))
    out = clear(np.asarray(canvas.convert("RGB")), box)
    left = (x0 + x1 - size[0]) // 2
    top = (y0 + y1 - size[1]) // 2
    window = out[top:top + size[1], left:left + size[0]]
    window[cut_mask] = cut[cut_mask]
    return Image.fromarray(out)
