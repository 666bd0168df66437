"""A1111-compatible ``parameters`` infotext in PNG files, written and read back.

Format (what AUTOMATIC1111's "PNG Info" and other tools read):
    PROMPT
    Negative prompt: NEGATIVE
    Steps: 20, Sampler: DDIM, CFG scale: 7.0, Seed: 1, Size: 128x128, Model hash: 0123456789, ...
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from PIL import Image, PngImagePlugin

from huajia.drawing import load_image
from huajia.errors import HuajiaError

_PAIR = re.compile(r'\s*([\w ]+):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def quote(value: object) -> str:
    """A field value as A1111 writes it: JSON-quoted when it holds ',', ':' or a newline."""
    text = str(value)
    if "," not in text and ":" not in text and "\n" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if not (text.startswith('"') and text.endswith('"')):
        return text
    try:
        return str(json.loads(text))
    except ValueError:  # older huajia quoting: only inner quotes escaped
        return text[1:-1].replace('\\"', '"')


def format_infotext(prompt: str, negative: str, fields: dict[str, object]) -> str:
    lines = [prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    lines.append(", ".join(f"{k}: {quote(v)}" for k, v in fields.items() if v is not None))
    return "\n".join(lines)


def parse_infotext(text: str) -> dict[str, str]:
    """Infotext → {'Prompt', 'Negative prompt', and every 'Key: value' field}."""
    lines = text.strip().split("\n")
    fields_line = lines[-1] if len(lines) > 1 and _PAIR.match(lines[-1]) else ""
    body = lines[:-1] if fields_line else lines
    prompt, negative, in_negative = [], [], False
    for line in body:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    out = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, raw in _PAIR.findall(fields_line):
        out[key.strip()] = unquote(raw.strip())
    return out


def _png_info(infotext: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("parameters", infotext)
    return info


def save_png(image: Image.Image, path: str | Path, infotext: str) -> Path:
    path = Path(path)
    image.save(path, pnginfo=_png_info(infotext))
    return path


def png_bytes(image: Image.Image, infotext: str) -> bytes:
    """The PNG file a server returns: same bytes as ``save_png`` would write."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=_png_info(infotext))
    return buffer.getvalue()


def read_infotext(path: str | Path) -> str:
    image = load_image(path)
    text = image.info.get("parameters")
    if not text:
        raise HuajiaError(f"'{path}' carries no generation parameters (no 'parameters' text chunk)")
    return str(text)
