"""Curation operators, with Data-Juicer's names and parameters.

(``any_or_all`` is accepted so Data-Juicer configs run unchanged; huajia samples carry one image,
for which 'any' and 'all' agree.)

Each filter looks at one sample and its opened image and answers keep/drop with a reason and the
statistic it measured (for the report's histograms). ``image_deduplicator`` only computes a
perceptual hash here; the runner drops repeats, since that needs every earlier hash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from PIL import Image

from huajia.errors import HuajiaError
from huajia.imagefolder import Sample

_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}


def parse_bytes(text: str | int) -> int:
    """'1.5MB', '200KiB', 1024 → bytes (Data-Juicer's image_size_filter units)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?i?B?)\s*", str(text), re.IGNORECASE)
    if not match or match.group(2).upper() not in _UNITS:
        raise HuajiaError(f"size '{text}' is not a byte size like 500KB, 1.5MB or 2GiB")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


@dataclass(frozen=True)
class OpDecision:
    """One operator's decision on one sample (not ``world.verifier.Verdict``, a picture's check
    against its prompt)."""

    keep: bool
    reason: str = ""
    stat: float | None = None  # the measured value, for histograms


def bounds(low: float, high: float, no_low: float, no_high: float, unit: str = "") -> str:
    """A filter's range as a person reads it: '≥ 1024', '≤ 5 MB' or '64-512' (bounds at their
    'no limit' values are left out, instead of printing 2147483648)."""
    def text(value: float) -> str:
        return f"{value:g}{unit}"

    if low <= no_low and high >= no_high:
        return "any"
    if high >= no_high:
        return f"≥ {text(low)}"
    if low <= no_low:
        return f"≤ {text(high)}"
    return f"{text(low)}-{text(high)}"


class ImageShapeFilter:
    name = "image_shape_filter"

    def __init__(self, min_width: int = 1, max_width: int = 2**31, min_height: int = 1,
                 max_height: int = 2**31, any_or_all: str = "any"):
        self.min_w, self.max_w, self.min_h, self.max_h = min_width, max_width, min_height, max_height

    def __call__(self, sample: Sample, image: Image.Image) -> OpDecision:
        w, h = image.size
        ok = self.min_w <= w <= self.max_w and self.min_h <= h <= self.max_h
        limits = [f"{name} {bounds(low, high, 1, 2**31)}" for name, low, high in
                  (("width", self.min_w, self.max_w), ("height", self.min_h, self.max_h))
                  if low > 1 or high < 2**31]
        reason = "" if ok else f"{w}x{h} outside {', '.join(limits)}"
        return OpDecision(ok, reason, float(min(w, h)))


class ImageAspectRatioFilter:
    name = "image_aspect_ratio_filter"

    def __init__(self, min_ratio: float = 0.333, max_ratio: float = 3.0, any_or_all: str = "any"):
        self.min_ratio, self.max_ratio = float(min_ratio), float(max_ratio)

    def __call__(self, sample: Sample, image: Image.Image) -> OpDecision:
        ratio = image.size[0] / image.size[1]
        ok = self.min_ratio <= ratio <= self.max_ratio
        return OpDecision(ok, "" if ok else f"aspect ratio {ratio:.2f} outside "
                       f"{bounds(self.min_ratio, self.max_ratio, 0, 1e9)}", ratio)


class ImageSizeFilter:
    name = "image_size_filter"

    def __init__(self, min_size: str | int = "0", max_size: str | int = "1TB",
                 any_or_all: str = "any"):
        self.min_bytes, self.max_bytes = parse_bytes(min_size), parse_bytes(max_size)

    def __call__(self, sample: Sample, image: Image.Image) -> OpDecision:
        size = sample.path.stat().st_size
        ok = self.min_bytes <= size <= self.max_bytes
        return OpDecision(ok, "" if ok else f"file size {size} B outside "
                       f"{bounds(self.min_bytes, self.max_bytes, 0, parse_bytes('1TB'), ' B')}",
                       float(size))


class ImageDeduplicator:
    """Perceptual hash (imagehash); the runner drops later copies of a hash already kept."""

    name = "image_deduplicator"
    METHODS = ("phash", "dhash", "whash", "ahash")

    def __init__(self, method: str = "phash", consider_text: bool = False, hash_size: int = 8,
                 max_distance: int = 0):
        if method not in self.METHODS:
            raise HuajiaError(f"image_deduplicator method '{method}' is unknown; "
                              f"use one of {', '.join(self.METHODS)}")
        self.method, self.consider_text = method, consider_text
        self.hash_size, self.max_distance = hash_size, max_distance

    def key(self, sample: Sample, image: Image.Image) -> Any:
        import imagehash

        digest = getattr(imagehash, self.method)(image, hash_size=self.hash_size)
        return (digest, sample.text) if self.consider_text else (digest, None)


class ImageTextSimilarityFilter:
    """CLIP similarity of image and caption from a local checkpoint (``hf_clip``). In the shapes
    world ``hf_clip: shapes-verifier`` makes the verifier stand in: the share of the caption's
    constraints the picture satisfies."""

    name = "image_text_similarity_filter"

    def __init__(self, hf_clip: str = "shapes-verifier", min_score: float = 0.1,
                 max_score: float = 1.0, **_: Any):
        self.min_score, self.max_score = float(min_score), float(max_score)
        self.hf_clip = hf_clip
        self._clip = None

    def _score(self, sample: Sample, image: Image.Image) -> float:
        if self.hf_clip == "shapes-verifier":
            from huajia.world.parser import parse
            from huajia.world.verifier import verify

            parsed = parse(sample.text)
            if not parsed.spec.groups:
                return 0.0
            return verify(image.convert("RGB"), parsed.spec, parsed.lang).score
        if self._clip is None:
            from huajia.scorers.clip import ClipScorer

            self._clip = ClipScorer(self.hf_clip)
        return self._clip.score(image.convert("RGB"), sample.text) / 250.0  # back to cosine

    def __call__(self, sample: Sample, image: Image.Image) -> OpDecision:
        score = self._score(sample, image)
        ok = self.min_score <= score <= self.max_score
        return OpDecision(ok, "" if ok else f"image-text score {score:.2f} outside "
                       f"{self.min_score}-{self.max_score}", score)


class ImageNsfwFilter:
    """nudenet's detector (``huajia.scorers.nsfw``): the score is the highest confidence of an
    exposed-anatomy class; at or above ``score_threshold`` the image goes."""

    name = "image_nsfw_filter"

    def __init__(self, score_threshold: float = 0.5, **_: Any):
        self.threshold = float(score_threshold)
        self._detector = None

    def __call__(self, sample: Sample, image: Image.Image) -> OpDecision:
        if self._detector is None:
            from huajia.scorers.nsfw import NsfwDetector

            self._detector = NsfwDetector()
        score = self._detector.score(image)
        ok = score < self.threshold
        return OpDecision(ok, "" if ok else f"nsfw score {score:.2f} ≥ {self.threshold}", score)


OPERATORS = {op.name: op for op in (ImageShapeFilter, ImageAspectRatioFilter, ImageSizeFilter,
                                    ImageDeduplicator, ImageTextSimilarityFilter, ImageNsfwFilter)}


def make_operator(name: str, params: dict | None):
    if name not in OPERATORS:
        raise HuajiaError(f"unknown operator '{name}'; huajia knows {', '.join(OPERATORS)}")
    try:
        return OPERATORS[name](**(params or {}))
    except TypeError as error:
        raise HuajiaError(f"bad parameters for {name}: {error}") from error
