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


GRID_PROMPTS = (
    "a red circle", "一个蓝色正方形", "two green triangles", "三个黄色星形",
    "a purple star above an orange circle", "一个红色圆形在一个蓝色三角形的左边",
    "a striped blue square and a dotted red circle", "两个条纹绿色圆形，背景是米色",
    "four black circles", "a small cyan triangle right of a large pink square",
    "一个大的棕色星形在一个小的黄色正方形下方", "two dotted orange squares on a gray background",
)


def prompt_grid(generator, prompts: tuple[str, ...] = GRID_PROMPTS, seed: int = 0,
                side: int = 128, columns: int = 4):
    """Generate one picture per prompt and show each with the verifier's verdict under it."""
    from huajia.world.parser import parse
    from huajia.world.verifier import verify

    images = generator.generate(list(prompts), [seed + i for i in range(len(prompts))], side)
    tiles = []
    for prompt, image in zip(prompts, images, strict=True):
        parsed = parse(prompt)
        verdict = verify(image, parsed.spec, parsed.lang)
        mark = "OK  " if verdict.passed else "×  "
        tiles.append(Tile(image, (prompt, mark + verdict.explain()),
                          (20, 110, 40) if verdict.passed else (150, 20, 20)))
    passed = sum(t.colour == (20, 110, 40) for t in tiles)
    title = f"{generator.name}: {passed}/{len(tiles)} pictures pass the verifier (seed {seed})"
    return captioned_grid(tiles, columns=columns, tile_px=192, text_lines=6, title=title)
