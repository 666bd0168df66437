"""The HTTP API's request and response bodies (pydantic), shaped like the OpenAI Images API.

OpenAI's fields (model, prompt, n, size, quality, style, response_format, user) keep their
meaning, so the official SDK works unchanged; huajia's own fields are built from the
vocabulary (``GenerationRequest``, ``ThinkOptions``, ``CriticOptions``: same names, defaults and
limits as the CLI and the Python API). Unknown fields are refused with a message naming them.
"""

from __future__ import annotations

import typing
from typing import Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from huajia.engine.request import MAX_PROMPT_CHARS, GenerationRequest
from huajia.params import params
from huajia.thinking.options import CriticOptions, ThinkOptions

# OpenAI's quality words → denoising steps (when ``steps`` is not given): the default, fewer
# for low, more for hd and high
_DEFAULT_STEPS = GenerationRequest.__dataclass_fields__["steps"].default
QUALITY_STEPS = {"low": 10, "standard": _DEFAULT_STEPS, "auto": _DEFAULT_STEPS,
                 "medium": _DEFAULT_STEPS, "hd": 28, "high": 40}
# OpenAI's style words: a preset of the same name, and the guidance used when none is given
# (vivid: stronger guidance, more saturated and contrasted; natural: gentler)
OPENAI_STYLES = {"vivid": 7.5, "natural": 4.0}
OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def _not_a_boolean(value):
    """JSON's true is not the number 1 (pydantic's lax mode would take it as one)."""
    if isinstance(value, bool):
        raise ValueError("a number is needed, not a boolean")
    return value


NotBool = BeforeValidator(_not_a_boolean)
NUMBERS = (int, float, int | None, float | None)


class _OpenAIFields(BaseModel):
    """The OpenAI Images API's own fields, and the ones whose HTTP form differs from Python's
    (size for width/height, LoRA names for paths, think)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1, max_length=MAX_PROMPT_CHARS,
                        description="What to paint, in English or Chinese; A1111 (word:1.5) "
                                    "weights work.")
    model: str | None = Field(None, description="The served model's id (GET /v1/models); "
                                                "omit for the default.")
    size: str | None = Field(None, description="WIDTHxHEIGHT (multiples of 8, 64-2048) or "
                                               "'auto'; omitted: the model's native size.")
    quality: Literal["low", "standard", "auto", "medium", "hd", "high"] = Field(
        "standard", description="Sets the steps when 'steps' is not given.")
    response_format: Literal["b64_json", "url"] = "b64_json"
    # gpt-image-1's fields
    output_format: Literal["png", "jpeg", "webp"] = Field(
        "png", description="Encoding of the returned pictures (png keeps the infotext chunk).")
    output_compression: typing.Annotated[int, NotBool] = Field(
        100, ge=0, le=100, description="jpeg/webp quality, 0-100.")
    background: Literal["auto", "opaque", "transparent"] = Field(
        "auto", description="auto or opaque (transparent is refused: the models paint opaque "
                            "pictures).")
    moderation: Literal["auto", "low"] = Field(
        "auto", description="Accepted for compatibility; the server's own safety policy "
                            "(huajia serve --nsfw) applies either way.")
    user: str | None = Field(None, max_length=256)
    loras: list[str] = Field(default_factory=list, max_length=8,
                             description="LoRA names from the server's LoRA folder, "
                                         "'NAME' or 'NAME:SCALE'.")
    think: bool = Field(False, description="Run the thinking loop (plan, pause, steer, repaint).")


def vocabulary_fields(cls: type) -> dict:
    """pydantic fields for a vocabulary dataclass's HTTP parameters: the same names, defaults,
    limits and help (older names accepted as aliases)."""
    hints = typing.get_type_hints(cls)
    fields = {}
    for name, (field, spec) in params(cls).items():
        if not spec.http:
            continue
        kind = hints[name]
        if spec.choices:
            kind = Literal[spec.choices] | None if field.default is None else Literal[spec.choices]
        limits = {"ge": spec.low, "le": spec.high, "max_length": spec.max_length,
                  "multiple_of": spec.multiple_of}
        extra = {k: v for k, v in limits.items() if v is not None}
        if spec.aliases:
            extra["validation_alias"] = AliasChoices(name, *spec.aliases)
        if kind in NUMBERS:
            kind = typing.Annotated[kind, NotBool]
        fields[name] = (kind, Field(field.default, description=spec.help, **extra))
    return fields


ImageGenerationBody = create_model(
    "ImageGenerationBody", __base__=_OpenAIFields,
    __doc__="POST /v1/images/generations and /v1/jobs: OpenAI's body plus huajia's parameters.",
    **vocabulary_fields(GenerationRequest), **vocabulary_fields(ThinkOptions),
    **vocabulary_fields(CriticOptions))


class ImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None
    seed: int | None = None


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]
    model: str | None = None  # which model painted (an alias such as dall-e-3 names it here)
    size: str | None = None
    output_format: str | None = None


class JobInfo(BaseModel):
    id: str
    object: Literal["image.job"] = "image.job"
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    created: int
    kind: str
    error: str | None = None


class ModelDetails(BaseModel):
    """What huajia knows of a served model beyond OpenAI's fields (its family's description)."""

    family: str = Field(..., description="The model family (sd, sdxl, flux, qwenimage, …).")
    label: str = Field(..., description="The family's name for people (FLUX.1, Qwen-Image, …).")
    pipeline: str = Field(..., description="The diffusers pipeline class.")
    native_size: int = Field(..., description="The side it paints natively, in pixels (the "
                             "default size; larger sizes are painted at it and upscaled).")
    size_multiple: int = Field(..., description="Sizes it paints are multiples of this.")
    largest_side: int | None = Field(None, description="The largest side it can paint at all "
                                     "(its position table's); null: no stated limit.")
    largest_oblong_area: int | None = Field(None, description="The largest area, in pixels, "
                                            "of a picture that is not square; null: no limit.")
    prediction: str = Field(..., description="epsilon, v_prediction or flow.")
    samplers: list[str] = Field(..., description="The samplers (scheduler names) it takes.")
    prompt_window: int | None = Field(None, description="Tokens per prompt chunk (a longer "
                                      "prompt is encoded in more chunks and costs more); null: "
                                      "any prompt is taken at one fixed length.")
    features: dict[str, bool] = Field(..., description="Which request options take effect "
                                      "(prompt_weights, negative_prompt, guidance_rescale, "
                                      "cfg_cutoff, loras, …).")


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "huajia"
    huajia: ModelDetails | None = Field(None, description="The served model's family, sizes, "
                                        "prediction, samplers and features.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(..., min_length=1, description="The picture, base64 (PNG, JPEG, WebP).")


class VerifyResult(BaseModel):
    made_here: bool
    watermark_score: float
    threshold: float
    infotext: str | None
    infotext_says_huajia: bool


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
