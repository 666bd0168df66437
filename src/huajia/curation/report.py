"""The curation report: JSON counts (kept / dropped per operator, reasons) and a PNG of
histograms of what each operator measured (sizes, ratios, scores)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from huajia.curation.runner import CurationReport
from huajia.drawing import font

_LABELS = {"image_shape_filter": "shorter side (px)", "image_aspect_ratio_filter": "aspect ratio",
           "image_size_filter": "file size (bytes)", "image_text_similarity_filter":
           "image-text score", "image_nsfw_filter": "nsfw score"}


def write_report(report: CurationReport, out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    json_path = out / "report.json"
    json_path.write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=1),
                         encoding="utf-8")
    png_path = out / "report.png"
    histograms(report).save(png_path)
    return json_path, png_path


def histograms(report: CurationReport, panel: tuple[int, int] = (360, 220)) -> Image.Image:
    names = [n for n in report.stats if report.stats[n]]
    rows = max(1, (len(names) + 1) // 2)
    sheet = Image.new("RGB", (panel[0] * 2, panel[1] * rows + 60), "white")
    draw = ImageDraw.Draw(sheet)
    dropped = ", ".join(f"{op} {n}" for op, n in report.dropped.items()) or "none"
    draw.text((10, 8), f"{report.total} files: kept {report.kept}; dropped: {dropped}",
              fill="black", font=font(14))
    for i, name in enumerate(names):
        _panel(draw, report.stats[name], name, (i % 2) * panel[0], 40 + (i // 2) * panel[1], panel)
    return sheet


def _panel(draw: ImageDraw.ImageDraw, values: list[float], name: str, x0: int, y0: int,
           size: tuple[int, int]) -> None:
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=20)
    width, height = size[0] - 40, size[1] - 70
    left, bottom = x0 + 30, y0 + 30 + height
    draw.text((x0 + 10, y0 + 4), f"{_LABELS.get(name, name)}  (n={len(values)})", fill="black",
              font=font(12))
    peak = max(int(counts.max()), 1)
    bar = width / len(counts)
    for k, count in enumerate(counts):
        top = bottom - height * count / peak
        draw.rectangle((left + k * bar + 1, top, left + (k + 1) * bar - 1, bottom),
                       fill=(70, 110, 180))
    draw.line((left, bottom, left + width, bottom), fill="black")
    draw.text((left, bottom + 4), f"{edges[0]:.3g}", fill="black", font=font(11))
    draw.text((left + width - 40, bottom + 4), f"{edges[-1]:.3g}", fill="black", font=font(11))
    draw.text((x0 + 2, y0 + 26), str(peak), fill="gray", font=font(10))
