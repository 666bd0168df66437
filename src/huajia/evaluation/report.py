"""ShapesEval outputs people read: the JSON report and a contact sheet of failures."""

from __future__ import annotations

import json
from pathlib import Path

from huajia.drawing import Tile, captioned_grid
from huajia.evaluation.shapes_eval import ShapesEvalResult


def write_json(result: ShapesEvalResult, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def failure_sheet(result: ShapesEvalResult, path: str | Path, columns: int = 6) -> Path | None:
    """Contact sheet of failed pictures, each with its prompt and the verifier's explanation."""
    if not result.failures:
        return None
    tiles = [Tile(image, (record.prompt, "× " + record.explanation), (150, 20, 20))
             for record, image in result.failures]
    title = (f"ShapesEval failures — model {result.model}, overall {result.overall:.3f} "
             f"({len(result.failures)} shown)")
    sheet = captioned_grid(tiles, columns=columns, tile_px=160, text_lines=6, title=title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
