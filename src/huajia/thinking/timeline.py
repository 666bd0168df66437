"""What the user sees of a thinking run: ``thoughts.json`` and ``timeline.png`` (the picture at
each pause with the thought under it, like a painter's sketchbook), and the plain-vs-thinking
comparison picture."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from huajia.drawing import Tile, captioned_grid
from huajia.thinking.loop import ThinkResult, plan_record
from huajia.thinking.messages import text
from huajia.thinking.preview import boxed, plan_canvas


def write_thoughts(result: ThinkResult, path: str | Path) -> Path:
    record = plan_record(result.plan)
    data = {"prompt": result.plan.prompt, "lang": result.plan.lang, "seed": result.seed,
            "nfe": result.nfe, "satisfied": result.satisfied,
            "planner": record["planner"], "background": record["background"],
            "plan": record["regions"],
            "thoughts": [{k: v for k, v in t.to_dict().items() if k != "preview"}
                         for t in result.thoughts]}
    path = Path(path)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def timeline(result: ThinkResult) -> Image.Image:
    """The plan, each pause's picture with the thoughts it prompted, then the final picture,
    each with the plan's region boxes."""
    plan = result.plan
    first = Tile(plan_canvas(plan, result.image.size), (_short(result.thoughts[0]),))
    tiles = [first] + [Tile(boxed(frame.image, plan), (frame.title,
                                                       *[_short(t) for t in frame.thoughts]))
                       for frame in result.frames]
    lang = result.plan.lang
    verdict = text("final_satisfied" if result.satisfied else "final_best", lang)
    cost = text("cost", lang, nfe=result.nfe)
    tiles.append(Tile(boxed(result.image, plan), (verdict, cost)))
    title = f"{result.plan.prompt}   |   {result.plan.describe()}"
    return captioned_grid(tiles, columns=min(len(tiles), 5), tile_px=200, text_lines=None,
                          font_px=12, title=title[:170])


def _short(thought) -> str:
    where = "" if thought.region is None else f"#{thought.region} "
    score = "" if thought.score is None else f"{thought.score:.0f}: "
    return f"{where}{score}{thought.observation} → {thought.decision}"


def comparison(prompt: str, plain: Image.Image, thought: Image.Image, plain_note: str,
               thought_note: str, lang: str = "en") -> Image.Image:
    """Plain vs thinking side by side, labelled in the prompt's language."""
    labels = text("label_plain", lang), text("label_thinking", lang)
    tiles = [Tile(plain, (labels[0], plain_note)), Tile(thought, (labels[1], thought_note))]
    return captioned_grid(tiles, columns=2, tile_px=256, text_lines=None, title=prompt)
