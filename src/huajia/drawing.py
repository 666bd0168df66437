"""Pictures people look at: captioned grids (contact sheets, timelines) with Chinese text drawn
as real glyphs.

Fonts are found when first needed, never at import: ``HUAJIA_FONT``, then fontconfig, then
well-known paths. Without a CJK font Chinese would render as boxes, so we refuse clearly instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from huajia.errors import HuajiaError

_KNOWN_CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)


@lru_cache(maxsize=1)
def cjk_font_path() -> str:
    """Path of a font with Chinese glyphs, or a HuajiaError saying how to get one."""
    configured = os.environ.get("HUAJIA_FONT")
    if configured:
        if not os.path.isfile(configured):
            raise HuajiaError(f"HUAJIA_FONT points to '{configured}', which does not exist")
        return configured
    if shutil.which("fc-match"):
        found = subprocess.run(["fc-match", "-f", "%{file}", ":lang=zh"], capture_output=True,
                               text=True, check=False).stdout.strip()
        if found and os.path.isfile(found) and _has_cjk(found):
            return found
    for path in _KNOWN_CJK_FONTS:
        if os.path.isfile(path):
            return path
    raise _no_cjk_font()


def _no_cjk_font() -> HuajiaError:
    return HuajiaError("no font with Chinese glyphs found; install one (Debian/Ubuntu: "
                       "apt-get install fonts-wqy-microhei, or run 'make setup') or set "
                       "HUAJIA_FONT")


def _has_cjk(path: str) -> bool:
    try:
        font = ImageFont.truetype(path, 16)
    except OSError:
        return False
    return font.getmask("画").getbbox() != font.getmask("\uffff").getbbox()


@lru_cache(maxsize=1)
def _cjk_font_or_none() -> str | None:
    try:
        return cjk_font_path()
    except HuajiaError:
        return None


def has_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" or "\u3000" <= ch <= "\u303f" or
               "\uff00" <= ch <= "\uffef" for ch in text)


def check_font_for(*texts: str) -> None:
    """Call before the work whose pictures will carry ``texts``: Chinese needs a CJK font
    (a HuajiaError saying how to get one); Latin text always has Pillow's own font."""
    if any(has_cjk(t) for t in texts) and _cjk_font_or_none() is None:
        raise _no_cjk_font()


@lru_cache(maxsize=8)
def font(size: int = 14) -> ImageFont.FreeTypeFont:
    """A CJK font when the machine has one, else Pillow's built-in font (Latin only)."""
    path = _cjk_font_or_none()
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def wrap(text: str, width_px: int, face: ImageFont.FreeTypeFont) -> list[str]:
    """Greedy wrap: English breaks at spaces, Chinese between any two characters."""
    tokens = re.findall(r"[\u3000-\u9fff\uff00-\uffef]|[^\s\u3000-\u9fff\uff00-\uffef]+\s*|\s+",
                        text)
    lines, current = [], ""
    for token in _split_long(tokens, width_px, face):
        candidate = current + token
        if current and face.getlength(candidate.rstrip()) > width_px:
            lines.append(current.rstrip())
            current = token.lstrip()
        else:
            current = candidate
    if current.strip():
        lines.append(current.rstrip())
    return lines


def _split_long(tokens: list[str], width_px: int, face: ImageFont.FreeTypeFont) -> list[str]:
    """Break any single token wider than the line into pieces that fit."""
    out = []
    for token in tokens:
        while face.getlength(token.rstrip()) > width_px and len(token) > 1:
            cut = len(token) - 1
            while cut > 1 and face.getlength(token[:cut]) > width_px:
                cut -= 1
            out.append(token[:cut])
            token = token[cut:]
        out.append(token)
    return out


@dataclass(frozen=True)
class Tile:
    image: Image.Image
    lines: tuple[str, ...] = ()  # text under the picture, one paragraph per entry
    colour: tuple[int, int, int] = (30, 30, 30)  # text colour (e.g. red for a failure)


def captioned_grid(tiles: Sequence[Tile], columns: int = 4, tile_px: int = 192,
                   text_lines: int | None = 5, font_px: int = 13,
                   title: str = "") -> Image.Image:
    """A contact sheet: pictures scaled to ``tile_px`` with wrapped text under each, at most
    ``text_lines`` lines (cut text ends in '…'; None: as many lines as the longest text)."""
    if not tiles:
        raise HuajiaError("nothing to draw: the grid has no pictures")
    check_font_for(title, *(line for tile in tiles for line in tile.lines))
    face = font(font_px)
    texts = [_fit([w for line in tile.lines for w in wrap(line, tile_px, face)], text_lines)
             for tile in tiles]
    text_lines = max(map(len, texts)) if text_lines is None else text_lines
    line_h = font_px + 4
    pad = 8
    cell_w, cell_h = tile_px + 2 * pad, tile_px + 2 * pad + text_lines * line_h
    title_h = (font_px + 10) if title else 0
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h + title_h), (250, 250, 248))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 4), title, fill=(0, 0, 0), font=font(font_px + 2))
    for i, tile in enumerate(tiles):
        x, y = (i % columns) * cell_w + pad, (i // columns) * cell_h + pad + title_h
        picture = tile.image.convert("RGB").resize((tile_px, tile_px), Image.Resampling.LANCZOS)
        sheet.paste(picture, (x, y))
        for k, line in enumerate(texts[i]):
            draw.text((x, y + tile_px + 4 + k * line_h), line, fill=tile.colour, font=face)
    return sheet


def _fit(lines: list[str], limit: int | None) -> list[str]:
    """``lines`` cut to ``limit``, the last kept line marked '…' when some are left out."""
    if limit is None or len(lines) <= limit:
        return lines
    return lines[:limit - 1] + [lines[limit - 1] + " …"] if limit else []


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open a picture fully (so corrupt files fail here), or raise a one-line HuajiaError."""
    if not os.path.exists(path):
        raise HuajiaError(f"image '{path}' does not exist; check the path")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, SyntaxError, ValueError) as error:
        raise HuajiaError(f"cannot read image '{path}': {error}; is it a PNG/JPEG file?") from error


_SERIES_COLOURS = ((30, 70, 160), (200, 80, 40), (40, 140, 70), (120, 60, 150))


def line_chart(series: dict[str, Sequence[float]], title: str, x_label: str = "step",
               size: tuple[int, int] = (720, 360), y_range: tuple[float, float] | None = None,
               smooth: int = 1) -> Image.Image:
    """Curves on shared axes with a legend; ``smooth`` > 1 draws a moving average over the raw
    values (shown faint)."""
    series = {k: [float(v) for v in vs] for k, vs in series.items() if len(vs)}
    if not series:
        raise HuajiaError("nothing to plot: every series is empty")
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = 56, 34, size[0] - 14, size[1] - 40
    values = [v for vs in series.values() for v in vs]
    low, high = y_range or (min(values), max(values))
    span = (high - low) or 1.0
    n = max(len(vs) for vs in series.values())

    def point(i: float, v: float) -> tuple[float, float]:
        return (left + (right - left) * i / max(1, n - 1), bottom - (bottom - top) * (v - low) / span)

    for k in range(5):  # horizontal grid with labels
        v = low + span * k / 4
        y = point(0, v)[1]
        draw.line([(left, y), (right, y)], fill=(228, 228, 228))
        draw.text((4, y - 7), f"{v:.3g}", fill="black", font=font(11))
    for vs, colour in zip(series.values(), _SERIES_COLOURS * 4, strict=False):
        faint = tuple(int(c + (255 - c) * 0.65) for c in colour)
        window = max(1, min(smooth, len(vs)))
        if window > 1:
            draw.line([point(i, v) for i, v in enumerate(vs)], fill=faint)
        averaged = [sum(vs[max(0, i - window + 1):i + 1]) / len(vs[max(0, i - window + 1):i + 1])
                    for i in range(len(vs))]
        draw.line([point(i, v) for i, v in enumerate(averaged)] or [point(0, vs[0])] * 2,
                  fill=colour, width=2)
    draw.rectangle((left, top, right, bottom), outline="black")
    draw.text((left, 8), title, fill="black", font=font(13))
    draw.text((right - 60, bottom + 8), f"{x_label} ({n})", fill="black", font=font(11))
    x = left
    for (name, _), colour in zip(series.items(), _SERIES_COLOURS * 4, strict=False):
        draw.rectangle((x, bottom + 14, x + 12, bottom + 24), fill=colour)
        draw.text((x + 16, bottom + 11), name, fill="black", font=font(11))
        x += 28 + int(font(11).getlength(name))
    return image
