"""The HTTP API's request and response bodies (pydantic), shaped like the OpenAI Images API.

OpenAI's fields (model, prompt, n, size, quality, style, response_format, user) keep their
meaning, so the official SDK works unchanged; huajia's own fields use the engine's names
(negative_prompt, seed, steps, guidance, scheduler, loras) and add the thinking loop (think,
critic, pauses, budget, threshold, restarts, repaints, steer, compose_tries). Unknown fields are
refused with a message naming them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# OpenAI's quality words → denoising steps (when ``steps`` is not given)
QUALITY_STEPS = {"low": 10, "standard": 20, "auto": 20, "medium": 20, "hd": 40, "high": 40}
# OpenAI's style words have no preset of their own here: they mean "no preset"
OPENAI_STYLES = ("vivid", "natural")


class ImageGenerationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1, max_length=4000,
                        description="What to paint, in English or Chinese; A1111 (word:1.5) "
                                    "weights work.")
    model: str | None = Field(None, description="The served model's id (GET /v1/models); "
                                                "omit for the default.")
    n: int = Field(1, ge=1, le=10)
    size: str | None = Field(None, description="WIDTHxHEIGHT (multiples of 8, 64-2048) or "
                                               "'auto'; omitted: the model's native size.")
    quality: Literal["low", "standard", "auto", "medium", "hd", "high"] = "standard"
    style: str | None = Field(None, description="A huajia style preset (GET /v1/styles), or "
                                                "OpenAI's vivid/natural (no preset).")
    response_format: Literal["b64_json", "url"] = "b64_json"
    user: str | None = Field(None, max_length=256)
    negative_prompt: str = Field("", max_length=4000)
    seed: int | None = Field(None, ge=0, lt=2**63)
    steps: int | None = Field(None, ge=1, le=150)
    guidance: float = Field(5.0, ge=0.0, le=30.0)
    scheduler: str | None = None
    loras: list[str] = Field(default_factory=list, max_length=8,
                             description="LoRA names from the server's LoRA folder, "
                                         "'NAME' or 'NAME:SCALE'.")
    think: bool = Field(False, description="Run the thinking loop (plan, pause, steer, repaint).")
    critic: Literal["shapes", "clip", "vlm"] = "shapes"
    pauses: int = Field(3, ge=0, le=10)
    budget: int | None = Field(None, ge=1, le=10_000, description="Max network evaluations.")
    threshold: float = Field(90.0, ge=0.0, le=100.0)
    restarts: int = Field(8, ge=0, le=10, description="Fresh starts allowed at the first pause.")
    repaints: int = Field(5, ge=0, le=10, description="Max repaint rounds after the last step.")
    steer: bool = Field(False, description="Also steer failing regions at the pauses.")
    compose_tries: int = Field(3, ge=0, le=6, description="Paint a wrong region alone (this "
                               "many checked seeds) and paste it into its box; 0: repaint only.")


class ImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None
    seed: int | None = None


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]


class JobInfo(BaseModel):
    id: str
    object: Literal["image.job"] = "image.job"
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    created: int
    kind: str
    error: str | None = None


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "huajia"


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
