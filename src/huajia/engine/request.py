"""Typed, frozen generation requests and results: the names, defaults and limits that the CLI,
the Python API and the HTTP API all use (see ``huajia.params``).

A request is validated when it is made, before any model is touched: bad sizes, unknown styles
or schedulers, malformed prompt weights and out-of-range numbers are ``HuajiaError``s.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from huajia.engine.prompt_weights import parse_weights
from huajia.engine.schedulers import MODEL, canonical, sampler_from_label, split_name
from huajia.engine.styles import get_style
from huajia.errors import HuajiaError
from huajia.params import check, param

if TYPE_CHECKING:
    from PIL import Image

MAX_PROMPT_CHARS = 4000
MAX_SEED = 2**63 - 1
UPSCALERS = ("lanczos", "none")
HIRES_UPSCALERS = ("latent", "lanczos")  # or (CLI and Python) an upscaler file spandrel loads
EXPANSIONS = ("none", "wildcards", "llm", "world")
MAX_LORA_SCALE = 10.0  # past this a LoRA paints noise or black (A1111's sliders stop at ±2)


@dataclass(frozen=True)
class LoraSpec:
    path: str
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not (isinstance(self.scale, int | float) and -MAX_LORA_SCALE <= self.scale <=
                MAX_LORA_SCALE):  # NaN fails both comparisons
            raise HuajiaError(f"LoRA scale {str(self.scale)[:20]} is not a number from "
                              f"-{MAX_LORA_SCALE:g} to {MAX_LORA_SCALE:g}; write NAME:0.8")

    @classmethod
    def parse(cls, text: str) -> LoraSpec:
        """'PATH' or 'PATH:SCALE' (as the CLI's --lora)."""
        head, sep, tail = text.rpartition(":")
        if sep and head:
            try:
                scale = float(tail)
            except ValueError:  # a ':' in the name itself
                return cls(text)
            return cls(head, scale)  # nan, inf, 1e308: refused here
        return cls(text)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str = param(help="What to paint (English or 中文; A1111 (word:1.5) weights work).",
                        max_length=MAX_PROMPT_CHARS, cli=False, http=False)
    _: KW_ONLY
    negative_prompt: str = param("", help="What to keep out of the picture.",
                                 aliases=("negative",), max_length=MAX_PROMPT_CHARS)
    seed: int | None = param(None, help="Seed of the first image (the next: seed+1, …); "
                             "omitted: a random seed, recorded in the result.",
                             low=0, high=MAX_SEED)
    # UniPC at 14 steps paints as well as DDIM at 20 on 336 held-out pictures (0.530 vs
    # 0.533), DDIM below 20 does not (docs/speed.md: the sweep)
    steps: int = param(14, help="Denoising steps.", low=1, high=150)
    guidance: float = param(5.0, help="Classifier-free guidance scale.", low=0.0, high=30.0,
                            aliases=("cfg",))
    true_guidance: float | None = param(None, help="Classifier-free guidance on guidance-"
                                        "distilled models (FLUX.1), where guidance is the "
                                        "distilled scale: on when a negative prompt is given "
                                        "(omitted: 3.5).", low=1.0, high=30.0)
    width: int | None = param(None, help="Width in pixels (omitted: the model's native size).",
                              low=64, high=2048, multiple_of=8, cli=False, http=False)
    height: int | None = param(None, help="Height in pixels (omitted: the model's native "
                               "size).", low=64, high=2048, multiple_of=8, cli=False, http=False)
    n: int = param(1, help="Number of images.", low=1, high=10, short="-n")
    style: str = param("none", help="Style preset (see 'huajia styles' or GET /v1/styles).")
    scheduler: str | None = param("unipc", help="Sampler, as huajia, A1111 or ComfyUI name it "
                                  "(dpmpp_2m_karras, 'DPM++ 2M Karras', 'dpmpp_2m karras'; "
                                  "'model': the model's own).", max_length=64)
    loras: tuple[LoraSpec, ...] = param((), help="LoRAs as PATH[:SCALE] (HTTP: names in the "
                                        "server's LoRA folder).", max_length=8, cli=False,
                                        http=False)
    guidance_rescale: float = param(0.0, help="CFG rescale (0: off).", low=0.0, high=1.0)
    cfg_cutoff: float = param(1.0, help="Guidance on this first fraction of the steps, then "
                              "the conditional pass alone at half the cost (1: every step; "
                              "diffusers' CFG-cutoff callback).", low=0.0, high=1.0)
    upscaler: str = param("lanczos", help="Sizes beyond the model's native resolution: paint "
                          "at the native size, then upscale with this (none: paint at the "
                          "asked size).", choices=UPSCALERS)
    hires_scale: float = param(1.0, help="Hires fix: paint at the base size, upscale by this, "
                               "then paint again at the new size (img2img; 1: off).",
                               low=1.0, high=4.0)
    hires_upscaler: str = param("lanczos", help="Hires fix upscaler: lanczos, latent or (CLI and "
                                "Python) an ESRGAN-family file.", max_length=1000)
    hires_steps: int = param(0, help="Hires fix: steps of the second pass (0: same as steps).",
                             low=0, high=150)
    hires_denoise: float = param(0.3, help="Hires fix: denoising strength of the second pass "
                                 "(the embedded model adds objects above 0.3: docs/finishing.md).",
                                 low=0.0, high=1.0, aliases=("denoising_strength",))
    sharpen: float = param(0.0, help="Unsharp mask after decoding (0: off; 1: the 3x3 kernel "
                           "[[0,-1,0],[-1,5,-1],[0,-1,0]]).", low=0.0, high=5.0)
    style_raw: str = param("", help="Your own style template, with {prompt} where the prompt "
                           "goes (applied after the style preset).", max_length=MAX_PROMPT_CHARS)
    expand: str = param("none", help="Prompt expansion: wildcards ({red|blue}, __colours__), "
                        "llm (a chat model writes the details) or world (the embedded model's "
                        "own details).", choices=EXPANSIONS)
    verbatim: bool = param(False, help="Paint the prompt exactly as written. Off: a model trained "
                           "on the shapes world (the embedded one) paints a prompt it reads fully "
                           "('could you draw me three green triangles?') in its own words "
                           "('three green triangles'); the result says so.")

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not visible(self.prompt):
            raise HuajiaError("the prompt is empty; describe the picture you want")
        check(self)
        if self.scheduler not in (None, MODEL):  # any spelling → huajia's name, or an error
            object.__setattr__(self, "scheduler", canonical(self.scheduler))
            split_name(self.scheduler)
        parse_weights(self.prompt)  # malformed weight syntax fails here, before any work
        parse_weights(self.negative_prompt)
        get_style(self.style)
        if self.style_raw and "{prompt}" not in self.style_raw:
            raise HuajiaError("style_raw needs '{prompt}' where the prompt goes, e.g. "
                              "'{prompt}, flat colours, soft light'")
        if self.hires_upscaler.lower() not in HIRES_UPSCALERS and not Path(self.hires_upscaler).is_file():
            raise HuajiaError(f"hires_upscaler '{self.hires_upscaler}' is neither latent, lanczos nor "
                              "an upscaler file that exists")
        if self.seed is not None and self.seed + self.n - 1 > MAX_SEED:
            raise HuajiaError(f"seed={self.seed} with n={self.n} runs past {MAX_SEED}; "
                              "use a smaller seed")


_LORA_TAG = re.compile(r"\s*<lora:[^>]*>")


def request_fields(infotext: str) -> dict:
    """The ``GenerationRequest`` fields an A1111 infotext records (huajia's or A1111's own):
    what re-paints its picture. LoRA tags are dropped (their files are not named there)."""
    from huajia.engine.infotext import parse_infotext

    info = parse_infotext(infotext)
    fields: dict = {"prompt": _LORA_TAG.sub("", info["Prompt"]).strip(),
                    "negative_prompt": info.get("Negative prompt", "")}
    numbers = {"Steps": ("steps", int), "CFG scale": ("guidance", float), "Seed": ("seed", int),
               "CFG rescale": ("guidance_rescale", float), "CFG cutoff": ("cfg_cutoff", float)}
    for key, (name, kind) in numbers.items():
        if key in info:
            try:
                fields[name] = kind(info[key])
            except ValueError:
                raise HuajiaError(f"the infotext's {key} '{info[key]}' is not a number") from None
    if "Hires upscale" in info:  # a hires fix: Size is the first pass's
        fields.update(_hires_fields(info))
        size = info.get("Size")
    else:
        size = info.get("Hires resize") or info.get("Size")
        if "Hires upscaler" in info:
            fields["upscaler"] = info["Hires upscaler"].lower()
    if size:
        fields["width"], fields["height"] = parse_size(size)
    if "Sharpen" in info:
        fields["sharpen"] = _number(info, "Sharpen", float)
    sampler = " ".join(info[k] for k in ("Sampler", "Schedule type") if info.get(k)
                       and info[k] != "Automatic")  # A1111 1.9+ writes the schedule apart
    if sampler_from_label(sampler):
        fields["scheduler"] = sampler_from_label(sampler)
    return fields


def painted_prompt(infotext: str) -> str:
    """The prompt an infotext says was painted (styles and expansion applied), LoRA tags
    dropped: OpenAI's ``revised_prompt``."""
    from huajia.engine.infotext import parse_infotext

    return _LORA_TAG.sub("", parse_infotext(infotext)["Prompt"]).strip()


def _number(info: dict, key: str, kind: type):
    try:
        return kind(info[key])
    except ValueError:
        raise HuajiaError(f"the infotext's {key} '{info[key]}' is not a number") from None


def _hires_fields(info: dict) -> dict:
    """A1111's hires-fix keys → the request's hires fields (an upscaler file named by its stem
    cannot be found again: Lanczos stands in)."""
    upscaler = info.get("Hires upscaler", "Latent").lower()
    fields = {"hires_scale": _number(info, "Hires upscale", float),
              "hires_upscaler": upscaler if upscaler in HIRES_UPSCALERS else "lanczos"}
    if "Hires steps" in info:
        fields["hires_steps"] = _number(info, "Hires steps", int)
    if "Denoising strength" in info:
        fields["hires_denoise"] = _number(info, "Denoising strength", float)
    return fields


def visible(text: str) -> str:
    """``text`` without whitespace and invisible format characters (zero-width spaces,
    joiners, direction marks): what is left to paint."""
    return "".join(ch for ch in text if not ch.isspace() and unicodedata.category(ch) != "Cf")


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
