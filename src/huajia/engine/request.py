"""Typed, frozen generation requests and results. The CLI, the Python API and the HTTP API use
these names: prompt, negative_prompt, seed, steps, guidance, width, height, n, style, scheduler,
loras."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from huajia.engine.prompt_weights import parse_weights
from huajia.errors import HuajiaError

MAX_N = 16


@dataclass(frozen=True)
class LoraSpec:
    path: str
    scale: float = 1.0

    @classmethod
    def parse(cls, text: str) -> LoraSpec:
        """'PATH' or 'PATH:SCALE' (as the CLI's --lora)."""
        head, sep, tail = text.rpartition(":")
        if sep and head:
            try:
                return cls(head, float(tail))
            except ValueError:
                pass
        return cls(text)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str = ""
    seed: int | None = None  # None: a random seed (recorded in the result)
    steps: int = 20
    guidance: float = 5.0
    width: int | None = None  # None: the model's native size
    height: int | None = None
    n: int = 1
    style: str = "none"
    scheduler: str | None = None  # None: the model's own
    loras: tuple[LoraSpec, ...] = ()
    guidance_rescale: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise HuajiaError("the prompt is empty; describe the picture you want")
        parse_weights(self.prompt)  # malformed weight syntax fails here, before any work
        parse_weights(self.negative_prompt)
        if not 1 <= self.n <= MAX_N:
            raise HuajiaError(f"n={self.n} is out of range; ask for 1 to {MAX_N} images")
        if not 1 <= self.steps <= 500:
            raise HuajiaError(f"steps={self.steps} is out of range; use 1 to 500")
        if not 0 <= self.guidance <= 50:
            raise HuajiaError(f"guidance={self.guidance} is out of range; use 0 to 50")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (value < 64 or value > 2048 or value % 8):
                raise HuajiaError(f"{name}={value} is not a valid size; use a multiple of 8 "
                                  "from 64 to 2048")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise HuajiaError(f"seed={self.seed} is out of range; use 0 to 2**63-1")


def parse_size(text: str) -> tuple[int, int]:
    """'128x128' (or '128') → (width, height)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise HuajiaError(f"size '{text}' is not WIDTHxHEIGHT, e.g. 128x128") from None
    if len(numbers) == 1:
        numbers *= 2
    if len(numbers) != 2:
        raise HuajiaError(f"size '{text}' is not WIDTHxHEIGHT, e.g. 128x128")
    return numbers[0], numbers[1]


@dataclass(frozen=True)
class GenerationResult:
    images: tuple[Image.Image, ...]
    seeds: tuple[int, ...]
    infotexts: tuple[str, ...]
    metadata: tuple[dict, ...]
    timings: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
