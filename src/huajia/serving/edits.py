"""``POST /v1/images/edits`` and ``/v1/images/variations``: OpenAI's multipart forms (``image``
or ``image[]``, ``mask``, ``prompt``, ``n``, ``size``, ``response_format``, …) read into a job.

The form's text fields are validated by a pydantic model (unknown fields refused, as for
generations); the pictures are checked from their headers before they are decoded, and stored in
the job as PNG so an acknowledged edit survives a restart.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass
from typing import Literal

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from huajia.engine.edits import MAX_SIDE
from huajia.engine.request import MAX_PROMPT_CHARS, MAX_SEED
from huajia.errors import HuajiaError

MAX_UPLOAD_PIXELS = MAX_SIDE * MAX_SIDE


class ImageEditForm(BaseModel):
    """The text fields of /v1/images/edits: OpenAI's, and huajia's own painting settings."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1, max_length=MAX_PROMPT_CHARS,
                        description="What to paint in the masked area.")
    model: str | None = None
    n: int = Field(1, ge=1, le=10)
    size: str | None = Field(None, description="WIDTHxHEIGHT (multiples of 8) or 'auto': the "
                                               "picture's own size.")
    response_format: Literal["b64_json", "url"] = "b64_json"
    output_format: Literal["png", "jpeg", "webp"] = "png"
    output_compression: int = Field(100, ge=0, le=100)
    background: Literal["auto", "opaque", "transparent"] = "auto"
    quality: Literal["low", "standard", "auto", "medium", "high", "hd"] = "auto"
    input_fidelity: Literal["high", "low"] | None = Field(None, description="Accepted; unused.")
    user: str | None = Field(None, max_length=256)
    # huajia's own
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    steps: int | None = Field(None, ge=1, le=150)
    guidance: float = Field(5.0, ge=0.0, le=30.0)
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    style: str = "none"
    sharpen: float = Field(0.0, ge=0.0, le=5.0)
    strength: float = Field(1.0, gt=0.0, le=1.0, description="How far back into the noise the "
                            "area starts (1: painted anew).")


class ImageVariationForm(ImageEditForm):
    """/v1/images/variations: no prompt needed (the picture's own infotext, or what the shapes
    world sees in it), the whole picture painted again."""

    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS,
                               description="Optional: what the variations show.")
    strength: float = Field(0.6, gt=0.0, le=1.0)


@dataclass(frozen=True)
class EditInput:
    """The pictures of an edit or variation job, as stored PNG bytes (base64 in the payload)."""

    mode: Literal["edit", "variation"]
    image: bytes
    mask: bytes | None
    strength: float

    def to_payload(self) -> dict:
        encode = lambda data: base64.b64encode(data).decode("ascii") if data else None  # noqa: E731
        return {"mode": self.mode, "image": encode(self.image), "mask": encode(self.mask),
                "strength": self.strength}

    @classmethod
    def from_payload(cls, payload: dict) -> EditInput:
        decode = lambda text: base64.b64decode(text) if text else None  # noqa: E731
        return cls(payload["mode"], decode(payload["image"]), decode(payload["mask"]),
                   payload["strength"])

    def identity(self) -> dict:
        """What the cache key needs: the pictures by content."""
        digest = lambda data: hashlib.sha256(data).hexdigest()[:24] if data else None  # noqa: E731
        return {"mode": self.mode, "image": digest(self.image), "mask": digest(self.mask),
                "strength": self.strength}

    def pictures(self) -> tuple[Image.Image, Image.Image | None]:
        return open_picture(self.image, "image"), open_picture(self.mask, "mask") if self.mask else None


UPLOAD_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "La", "CMYK", "YCbCr")


def open_picture(data: bytes, name: str, claimed: str | None = None) -> Image.Image:
    """An uploaded picture (see ``picture_header``), decoded."""
    try:
        image = picture_header(data, name, claimed)
        image.load()
    except Image.DecompressionBombError:
        raise HuajiaError(f"{name} is too large; edits take at most {MAX_SIDE}x{MAX_SIDE}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        if isinstance(error, HuajiaError):
            raise
        raise HuajiaError(f"{name} is not a readable picture (PNG, JPEG or WebP)") from None
    return image.convert("RGBA") if "A" in image.getbands() else image.convert("RGB")


def picture_header(data: bytes, name: str, claimed: str | None = None) -> Image.Image:
    """An uploaded picture, not yet decoded: PNG, JPEG or WebP of 8 bits a channel, what it
    claims to be (its multipart content type), not too large (decompression bombs)."""
    try:
        image = Image.open(io.BytesIO(data), formats=tuple(UPLOAD_FORMATS))
    except Image.DecompressionBombError:
        raise HuajiaError(f"{name} is too large; edits take at most {MAX_SIDE}x{MAX_SIDE}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise HuajiaError(f"{name} is not a readable picture (PNG, JPEG or WebP)") from None
    if image.mode not in EIGHT_BIT_MODES:
        raise HuajiaError(f"{name} has {image.mode} pixels; send 8 bits a channel (RGB, RGBA or "
                          "grey)")
    claimed = (claimed or "").split(";")[0].strip().lower()
    if claimed.startswith("image/") and claimed not in (UPLOAD_FORMATS[image.format], "image/jpg"):
        raise HuajiaError(f"{name} says it is {claimed[:40]} but holds {image.format}; send it "
                          "with its own type")
    if image.width * image.height > MAX_UPLOAD_PIXELS:
        raise HuajiaError(f"{name} is {image.width}x{image.height}; edits take at most "
                          f"{MAX_SIDE}x{MAX_SIDE}")
    return image


def as_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def read_form(request, form_model: type[ImageEditForm]):
    """(fields, image bytes, mask bytes or None) of a multipart edit/variation request."""
    from starlette.datastructures import UploadFile

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HuajiaError("send the picture as multipart/form-data (as the openai SDK does), "
                          "with an 'image' file field")
    try:
        form = await request.form(max_files=4, max_fields=64)
    except Exception as error:  # noqa: BLE001 - starlette's MultiPartException and kin
        raise HuajiaError(f"the multipart form could not be read ({error})") from None
    files, fields, types = {}, {}, {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            files.setdefault(key.removesuffix("[]"), await value.read())
            types.setdefault(key.removesuffix("[]"), value.content_type)
        else:
            fields[key] = value
    try:
        parsed = form_model(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "form"
        raise HuajiaError(f"{where}: {first['msg']}") from None
    if "image" not in files:
        raise HuajiaError("the form has no 'image' file; attach the picture to edit")
    unknown = set(files) - {"image", "mask"}
    if unknown:
        raise HuajiaError(f"unknown file field(s): {', '.join(sorted(unknown))}; use image and mask")
    for key, data in files.items():  # what each claims to be, from its header, before queuing
        picture_header(data, key, types.get(key))
    return parsed, files["image"], files.get("mask")


def describe_picture(image: Image.Image) -> str:
    """A prompt for a variation without one: the picture's infotext prompt, or what the shapes
    world's detector sees in it ('a picture' when it sees nothing)."""
    from huajia.engine.request import painted_prompt
    from huajia.world import captions, vocab
    from huajia.world.detect import detect
    from huajia.world.spec import ObjectGroup, SceneSpec

    text = image.info.get("parameters")
    if text:
        return painted_prompt(str(text)) or "a picture"
    background, found = detect(image.convert("RGB"))
    if not found:
        return "a picture"
    counts: dict[tuple, int] = {}
    for d in found:
        counts[(d.shape, d.colour)] = counts.get((d.shape, d.colour), 0) + 1
    # more of one kind than the words count (four) is said as a bare plural: 'red circles'
    groups = tuple(ObjectGroup(shape, count if count <= vocab.MAX_COUNT else None, colour)
                   for (shape, colour), count in counts.items())
    return captions.caption(SceneSpec(groups, (), background), captions.template("en_plain"))

