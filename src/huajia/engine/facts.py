"""What a front end must know of a model without holding its weights: its name and hash (cache
keys), its native size and size multiple (the sizes it paints at, so a request's size is
checked and its cost bounded before any work), its tokenizer (prompt chunks) and its family's
description (``Family.describe``: family, pipeline, prediction, samplers, features; ``GET
/v1/models``). The Engine answers its own size questions through it, and a Ray ingress gets one
from a model replica once (``serving.ray``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from huajia.engine.families.base import check_multiple
from huajia.engine.request import GenerationRequest
from huajia.engine.upscalers import target_size

CLIP_WINDOW = 75  # CLIP's 77 tokens less BOS and EOS: a chunk where nothing else is known


@dataclass(frozen=True)
class ModelFacts:
    name: str
    model_hash: str
    native_size: int
    tokenizer: Any = None
    size_multiple: int = 8  # the family's: sizes it can paint are multiples of this
    describe: dict = field(default_factory=dict)  # the family's facts (``Family.describe``)

    @property
    def family(self) -> str:
        return self.describe.get("family", "")

    @property
    def prompt_window(self) -> int | None:
        """Tokens per prompt chunk (a longer prompt costs more); None: any prompt is taken at
        one fixed length (``Family.prompt_window``)."""
        return self.describe.get("prompt_window") if self.describe else CLIP_WINDOW

    def check_size(self, size: tuple[int, int]) -> None:
        """Refuse a size the model cannot paint, in the engine's words (before any work)."""
        check_multiple(self.describe.get("label", self.name), self.size_multiple, size,
                       self.describe.get("largest_side"), self.describe.get("largest_oblong_area"))

    def base_size(self, request: GenerationRequest) -> tuple[int, int]:
        """The asked size (the model's native size where none was asked)."""
        return request.width or self.native_size, request.height or self.native_size

    def size_of(self, request: GenerationRequest) -> tuple[int, int]:
        """The size of the pictures ``request`` gets back (the hires fix scales the base)."""
        base = self.base_size(request)
        return target_size(base, request.hires_scale) if request.hires_scale > 1 else base

    def hires_size(self, request: GenerationRequest) -> tuple[int, int]:
        """Where the hires fix's second pass paints: the first pass's size × the scale, in the
        model's size multiples (nearest, halves up; ``Engine.finish`` resizes to ``size_of``)."""
        step = self.size_multiple
        return tuple(max(step, int(side / step + 0.5) * step)
                     for side in target_size(self.paint_size(request), request.hires_scale))

    def paint_size(self, request: GenerationRequest) -> tuple[int, int]:
        """The size the model paints at: the asked size or, past the model's native resolution
        (a 128 px model asked for 1024x1024), the same shape scaled down to fit it, to be
        upscaled after (``Engine.finish``), since a model paints dots at sizes it never saw."""
        width, height = self.base_size(request)
        native = self.native_size
        if request.upscaler == "none" or max(width, height) <= native:
            return width, height
        scale = native / max(width, height)
        step = self.size_multiple
        return (max(64, round(width * scale / step) * step),
                max(64, round(height * scale / step) * step))
