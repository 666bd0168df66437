"""The report's pictures, drawn with Pillow (huajia's charts do not need matplotlib): per-task
bars, and FID against ShapesEval over CFG on one chart with two axes."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from huajia.drawing import font

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14),
           (23, 190, 207), (140, 86, 75)]


def task_bars(by_setting: dict[str, dict[str, float]], title: str,
              size: tuple[int, int] = (860, 360)) -> Image.Image:
    """Grouped bars: one group per task, one bar per setting (values in [0, 1])."""
    tasks = sorted({t for scores in by_setting.values() for t in scores})
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = 44, 34, size[0] - 12, size[1] - 74
    for k in range(5):
        y = bottom - (bottom - top) * k / 4
        draw.line([(left, y), (right, y)], fill=(228, 228, 228))
        draw.text((6, y - 7), f"{k / 4:.2f}", fill="black", font=font(11))
    group = (right - left) / max(1, len(tasks))
    bar = group * 0.8 / max(1, len(by_setting))
    for i, task in enumerate(tasks):
        x0 = left + i * group + group * 0.1
        for j, (_, scores) in enumerate(by_setting.items()):
            value = scores.get(task, 0.0)
            x = x0 + j * bar
            draw.rectangle((x, bottom - (bottom - top) * value, x + bar - 1, bottom), fill=COLOURS[j % 7])
        draw.text((x0, bottom + 4), task.replace("_", " "), fill="black", font=font(11))
    draw.rectangle((left, top, right, bottom), outline="black")
    draw.text((left, 8), title, fill="black", font=font(13))
    _legend(draw, list(by_setting), left, bottom + 30)
    return image


def tradeoff_chart(cfgs: Sequence[float], fid: Sequence[float], shapes: Sequence[float],
                   title: str, size: tuple[int, int] = (720, 380)) -> Image.Image:
    """FID (left axis, lower is better) and ShapesEval (right axis) against CFG."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = 60, 34, size[0] - 60, size[1] - 60
    low, high = min(cfgs), max(cfgs)
    fid_high = max(fid) * 1.1 or 1.0

    def x_of(c: float) -> float:
        return left + (right - left) * ((c - low) / ((high - low) or 1))

    for k in range(5):
        y = bottom - (bottom - top) * k / 4
        draw.line([(left, y), (right, y)], fill=(228, 228, 228))
        draw.text((6, y - 7), f"{fid_high * k / 4:.3g}", fill=COLOURS[1], font=font(11))
        draw.text((right + 6, y - 7), f"{k / 4:.2f}", fill=COLOURS[0], font=font(11))
    for values, colour, scale in ((fid, COLOURS[1], fid_high), (shapes, COLOURS[0], 1.0)):
        points = [(x_of(c), bottom - (bottom - top) * v / scale) for c, v in zip(cfgs, values, strict=True)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for px, py in points:
            draw.ellipse((px - 4, py - 4, px + 4, py + 4), fill=colour)
    for c in cfgs:
        draw.text((x_of(c) - 8, bottom + 4), f"{c:g}", fill="black", font=font(11))
    draw.rectangle((left, top, right, bottom), outline="black")
    draw.text((left, 8), title, fill="black", font=font(13))
    draw.text(((left + right) / 2 - 30, bottom + 20), "CFG scale", fill="black", font=font(11))
    _legend(draw, ["FID (left, lower is better)", "ShapesEval (right)"], left, bottom + 38,
            [COLOURS[1], COLOURS[0]])
    return image


def _legend(draw: ImageDraw.ImageDraw, names: list[str], x: float, y: float,
            colours: list | None = None) -> None:
    for name, colour in zip(names, colours or [COLOURS[i % 7] for i in range(len(names))], strict=True):
        draw.rectangle((x, y, x + 12, y + 10), fill=colour)
        draw.text((x + 16, y - 3), name, fill="black", font=font(11))
        x += 30 + int(font(11).getlength(name))


def stack(pictures: Sequence[Image.Image]) -> Image.Image:
    """Pictures one above the other on white (the report's single PNG)."""
    width = max(p.width for p in pictures)
    out = Image.new("RGB", (width, sum(p.height for p in pictures) + 10 * len(pictures)), "white")
    y = 0
    for picture in pictures:
        out.paste(picture, (0, y))
        y += picture.height + 10
    return out
