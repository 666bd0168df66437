"""huajia's operators, registered in Data-Juicer under Data-Juicer's own names and parameters,
so one config mixes both and ``dj-process`` semantics hold (stats in ``__dj__stats__``, the
``any_or_all`` strategy, min/max bounds):

- ``image_aesthetics_filter``: the LAION aesthetics predictor (the linear head
  ``simple-aesthetics-predictor`` puts on a CLIP ViT) from a local folder (``hf_scorer_model``),
  scores / 10 as Data-Juicer normalises that predictor's;
- ``image_text_similarity_filter``: CLIP similarity from a local CLIP folder (``hf_clip``), or
  the shapes world's verifier (``hf_clip: shapes-verifier``);
- ``image_nsfw_filter``: nudenet's detector (``score_threshold``), no download;
- ``image_deduplicator``: perceptual hashes by imagehash (Data-Juicer's imports imagededup,
  whose torchvision has no build beside this CPU torch);
- ``world_caption_mapper`` (huajia's own name): captions a shapes-world picture from what the
  world's detector sees in it, in English and Chinese (no model, no download).

Imported only when a curation runs (it imports Data-Juicer); ``register()`` does the work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from data_juicer.ops.base_op import OPERATORS, Filter, Mapper
from data_juicer.ops.deduplicator.image_deduplicator import ImageDeduplicator
from data_juicer.utils.constant import Fields, StatsKeys
from data_juicer.utils.mm_utils import load_data_with_context, load_image

from huajia.errors import HuajiaError

VERIFIER = "shapes-verifier"
HASH_METHODS = ("phash", "dhash", "whash", "ahash")


def _images(op, sample: dict, context: bool) -> tuple[dict, list]:
    """The sample's images (Data-Juicer's loader, with its context cache)."""
    if op.image_key not in sample or not sample[op.image_key]:
        return sample, []
    sample, images = load_data_with_context(sample, context, sample[op.image_key], load_image,
                                            mm_bytes_key=op.image_bytes_key)
    return sample, [images[key] for key in sample[op.image_key]]


def _keep(op, scores, low: float, high: float) -> bool:
    if len(scores) == 0:
        return True
    keep = [op.get_keep_boolean(score, low, high) for score in scores]
    return bool(any(keep) if op.any else all(keep))


def _strategy(any_or_all: str) -> bool:
    if any_or_all not in ("any", "all"):
        raise HuajiaError(f"any_or_all '{any_or_all}' is unknown; use any or all")
    return any_or_all == "any"


class AestheticsPredictor:
    """A CLIP vision tower with the LAION linear head: score = head(normalised image embeds),
    about 1-10. The folder is simple-aesthetics-predictor's (a CLIPVisionModelWithProjection
    whose weights file also holds ``predictor.weight``/``predictor.bias``) with its image
    processor."""

    def __init__(self, folder: str):
        import torch
        from safetensors.torch import load_file
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        path = Path(folder)
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise HuajiaError(f"aesthetics predictor '{folder}' has no model.safetensors; pass a "
                              "local simple-aesthetics-predictor folder")
        state = load_file(weights)
        if "predictor.weight" not in state:
            raise HuajiaError(f"'{folder}' has no LAION head (predictor.weight); pass a "
                              "simple-aesthetics-predictor folder")
        self.tower = CLIPVisionModelWithProjection.from_pretrained(path).eval()
        self.head = torch.nn.Linear(*reversed(state["predictor.weight"].shape))
        self.head.load_state_dict({"weight": state["predictor.weight"],
                                   "bias": state["predictor.bias"]})
        self.processor = CLIPImageProcessor.from_pretrained(path)

    def scores(self, images: list) -> list[float]:
        import torch

        inputs = self.processor(images=[i.convert("RGB") for i in images], return_tensors="pt")
        with torch.no_grad():
            embeds = self.tower(pixel_values=inputs["pixel_values"]).image_embeds
            embeds = embeds / embeds.norm(dim=-1, keepdim=True)
            return self.head(embeds)[:, 0].tolist()


class InProcess:
    """A model-running operator runs in Data-Juicer's own process: torch in a forked worker
    can hang or segfault on the thread pool its parent started (seen in the suite). None, not
    1: datasets forks a pool for any num_proc of 1 or more."""

    def runtime_np(self) -> None:
        return None


class HuajiaAestheticsFilter(InProcess, Filter):
    """Data-Juicer's ``image_aesthetics_filter`` on a local LAION predictor folder."""

    def __init__(self, hf_scorer_model: str = "", trust_remote_code: bool = False,
                 min_score: float = 0.5, max_score: float = 1.0, any_or_all: str = "any",
                 *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.folder, self.min_score, self.max_score = hf_scorer_model, min_score, max_score
        self.any = _strategy(any_or_all)
        self._predictor = None

    def compute_stats_single(self, sample, rank=None, context=False):
        if StatsKeys.image_aesthetics_scores in sample[Fields.stats]:
            return sample
        sample, images = _images(self, sample, context)
        if images and self._predictor is None:
            self._predictor = AestheticsPredictor(self.folder)
        scores = [s / 10.0 for s in self._predictor.scores(images)] if images else []
        sample[Fields.stats][StatsKeys.image_aesthetics_scores] = scores
        return sample

    def process_single(self, sample):
        return _keep(self, sample[Fields.stats][StatsKeys.image_aesthetics_scores],
                     self.min_score, self.max_score)


class HuajiaSimilarityFilter(InProcess, Filter):
    """Data-Juicer's ``image_text_similarity_filter``: a local CLIP folder's cosine, or the
    shapes verifier's share of the caption's constraints the picture meets."""

    def __init__(self, hf_clip: str = VERIFIER, trust_remote_code: bool = False,
                 min_score: float = 0.1, max_score: float = 1.0, any_or_all: str = "any",
                 reduce_mode: str = "avg", horizontal_flip: bool = False,
                 vertical_flip: bool = False, *args, **kwargs):
        super().__init__(*args, **kwargs)  # one image per caption: reduce_mode and flips unused
        self.hf_clip, self.min_score, self.max_score = hf_clip, min_score, max_score
        self.any = _strategy(any_or_all)
        self._clip = None

    def _score(self, image, text: str) -> float:
        if self.hf_clip == VERIFIER:
            from huajia.world.parser import parse
            from huajia.world.verifier import verify

            parsed = parse(text)
            if not parsed.spec.groups:
                return 0.0
            return verify(image.convert("RGB"), parsed.spec, parsed.lang).score
        if self._clip is None:
            from huajia.scorers.clip import ClipScorer

            self._clip = ClipScorer(self.hf_clip)
        return self._clip.score(image.convert("RGB"), text) / 250.0  # back to the cosine

    def compute_stats_single(self, sample, rank=None, context=False):
        if StatsKeys.image_text_similarity in sample[Fields.stats]:
            return sample
        sample, images = _images(self, sample, context)
        text = sample.get(self.text_key) or ""
        text = text.replace("<__dj__image>", "").replace("<|__dj__eoc|>", "").strip()
        sample[Fields.stats][StatsKeys.image_text_similarity] = [
            self._score(image, text) for image in images]
        return sample

    def process_single(self, sample):
        return _keep(self, sample[Fields.stats][StatsKeys.image_text_similarity],
                     self.min_score, self.max_score)


class HuajiaNsfwFilter(InProcess, Filter):
    """Data-Juicer's ``image_nsfw_filter`` on nudenet: an image at or above
    ``score_threshold`` (the highest exposed-anatomy confidence) goes."""

    def __init__(self, hf_nsfw_model: str = "", trust_remote_code: bool = False,
                 score_threshold: float = 0.5, any_or_all: str = "any", *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.threshold = score_threshold
        self.any = _strategy(any_or_all)
        self._detector = None

    def compute_stats_single(self, sample, rank=None, context=False):
        if StatsKeys.image_nsfw_score in sample[Fields.stats]:
            return sample
        sample, images = _images(self, sample, context)
        if images and self._detector is None:
            from huajia.scorers.nsfw import NsfwDetector

            self._detector = NsfwDetector()
        sample[Fields.stats][StatsKeys.image_nsfw_score] = [
            self._detector.score(image) for image in images]
        return sample

    def process_single(self, sample):
        scores = sample[Fields.stats][StatsKeys.image_nsfw_score]
        if len(scores) == 0:
            return True
        keep = [score < self.threshold for score in scores]
        return bool(any(keep) if self.any else all(keep))


class ImageHasher:
    """imagededup's ``encode_image`` on imagehash (phash, dhash, whash, ahash)."""

    def __init__(self, method: str):
        self.method = method

    def encode_image(self, image_array: np.ndarray) -> str:
        import imagehash
        from PIL import Image

        return str(getattr(imagehash, self.method)(Image.fromarray(image_array)))


class HuajiaImageDeduplicator(ImageDeduplicator):
    """Data-Juicer's ``image_deduplicator`` (exact matches of a perceptual hash, optionally with
    the text's), hashing with imagehash instead of imagededup."""

    def __init__(self, method: str = "phash", consider_text: bool = False, *args, **kwargs):
        if method not in HASH_METHODS:
            raise HuajiaError(f"image_deduplicator method '{method}' is unknown; use phash, "
                              "dhash, whash or ahash")
        super(ImageDeduplicator, self).__init__(*args, **kwargs)
        self.hasher = ImageHasher(method)
        self.consider_text = consider_text
        self.text_dedup_op = None
        if consider_text:
            from data_juicer.ops.deduplicator.document_deduplicator import DocumentDeduplicator

            self.text_dedup_op = DocumentDeduplicator(**kwargs)


def world_spec(image):
    """The scene the world's detector sees in ``image``: one group per kind of object (shape,
    colour, texture, size) with its count, on the detected background."""
    from collections import Counter

    from huajia.world.detect import detect
    from huajia.world.spec import ObjectGroup, SceneSpec

    background, found = detect(image.convert("RGB"))
    kinds = Counter((d.shape, d.colour, d.texture, d.size) for d in found)
    groups = tuple(ObjectGroup(shape, count, colour, texture, size)
                   for (shape, colour, texture, size), count in kinds.items())
    return SceneSpec(groups, (), background) if groups else None


class HuajiaWorldCaptionMapper(InProcess, Mapper):
    """Captions a shapes-world picture from what the world's detector sees: ``text`` in
    English (``en_template``) and ``text_zh`` in Chinese (``zh_template``); a picture in
    which nothing is found keeps its caption."""

    def __init__(self, en_template: str = "en_photo", zh_template: str = "zh_scene",
                 *args, **kwargs):
        super().__init__(*args, **kwargs)
        from huajia.world.captions import TEMPLATES, template

        try:
            self.en, self.zh = template(en_template), template(zh_template)
        except KeyError as error:
            raise HuajiaError(f"world_caption_mapper: unknown template {error}; known: "
                              f"{', '.join(t.id for t in TEMPLATES)}") from None

    def process_single(self, sample, rank=None):
        from huajia.world.captions import caption

        sample, images = _images(self, sample, context=False)
        spec = world_spec(images[0]) if images else None
        if spec is not None:
            sample[self.text_key] = caption(spec, self.en)
            sample["text_zh"] = caption(spec, self.zh)
        return sample


HUAJIA_OPERATORS = {"image_aesthetics_filter": HuajiaAestheticsFilter,
                    "image_text_similarity_filter": HuajiaSimilarityFilter,
                    "image_nsfw_filter": HuajiaNsfwFilter,
                    "image_deduplicator": HuajiaImageDeduplicator,
                    "world_caption_mapper": HuajiaWorldCaptionMapper}
# the parameter naming a local model folder, and its default (checked before any work)
MODEL_PATHS = {"image_aesthetics_filter": ("hf_scorer_model", ""),
               "image_text_similarity_filter": ("hf_clip", VERIFIER)}


def register() -> None:
    """huajia's operators in Data-Juicer's registry, in place of Data-Juicer's of those names."""
    for name, cls in HUAJIA_OPERATORS.items():
        OPERATORS.register_module(name, cls, force=True)
