"""What a person sees of a half-made picture: the picture with the plan's region boxes drawn on
it (numbered as the thoughts name them), for the timeline and, as small data-URL thumbnails,
for the web page's thoughts."""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw

from huajia.thinking.plan import Plan

COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
           "#bfef45")  # one per region (at most 8), distinct on light and dark pictures
THUMBNAIL_PX = 160


def boxed(image: Image.Image, plan: Plan, side: int | None = None) -> Image.Image:
    """``image`` (resized so its longer side is ``side``, if given) with each region's box
    outlined in its colour and its number in the corner."""
    picture = image.convert("RGB")
    if side is not None:
        scale = side / max(picture.size)
        picture = picture.resize((max(1, round(picture.width * scale)),
                                  max(1, round(picture.height * scale))),
                                 Image.Resampling.NEAREST if scale >= 1 else
                                 Image.Resampling.BILINEAR)
    else:
        picture = picture.copy()
    draw = ImageDraw.Draw(picture)
    width, height = picture.size
    line = max(1, round(max(width, height) / 80))
    for region in plan.regions:
        colour = COLOURS[region.index % len(COLOURS)]
        x0, y0, x1, y1 = region.box
        corners = (round(x0 * (width - 1)), round(y0 * (height - 1)),
                   round(x1 * (width - 1)), round(y1 * (height - 1)))
        draw.rectangle(corners, outline=colour, width=line)
        draw.rectangle((corners[0], corners[1], corners[0] + 5 * line + 6,
                        corners[1] + 6 * line + 6), fill=colour)
        draw.text((corners[0] + 2 + line, corners[1] + 1 + line), str(region.index),
                  fill="white")
    return picture


def plan_canvas(plan: Plan, size: tuple[int, int]) -> Image.Image:
    """The plan alone: its boxes on an empty canvas (the first thought's picture)."""
    return boxed(Image.new("RGB", size, "#eeeae2"), plan)


def data_url(image: Image.Image, plan: Plan) -> str:
    """A small JPEG thumbnail of ``image`` with the plan's boxes, as a data URL."""
    buffer = io.BytesIO()
    boxed(image, plan, THUMBNAIL_PX).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
