"""RL vs the honest baselines on held-out ShapesEval: plain generation at the default settings
(20 DDIM steps, CFG 5), judged by the verifier *and* by the second judge, with diversity across
seeds, the CPU minutes each model cost, and a before/after grid (benchmarks/results/rl_grid.png).

Run: python benchmarks/rl.py --model "shipped base=embedded" --model "GRPO=runs/rl/grpo/model" \
        [--cpu-minutes "supervised=31.5"] [--specs-per-task 12] [--images-per-prompt 2]
A model's CPU minutes come from its RL record (OUT/rl.json) when it has one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import RESULTS, report

from huajia.drawing import Tile, captioned_grid
from huajia.engine.engine import Engine
from huajia.evaluation.generators import EngineGenerator
from huajia.evaluation.model_report import report_model
from huajia.evaluation.prompts import TASKS, shapes_eval_prompts
from huajia.world.parser import unknown_words

GRID_PROMPTS = 2  # per task, the first specs' English and Chinese prompts alternate


def _cpu_minutes(path: str, given: dict[str, float], label: str) -> float | None:
    if label in given:
        return given[label]
    record = Path(path).parent / "rl.json"
    if record.is_file():
        return json.loads(record.read_text())["cpu_s"] / 60
    return 0.0 if path == "embedded" else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", required=True, help="LABEL=PATH (repeatable).")
    parser.add_argument("--cpu-minutes", action="append", default=[], help="LABEL=MINUTES.")
    parser.add_argument("--specs-per-task", type=int, default=12)
    parser.add_argument("--images-per-prompt", type=int, default=2)
    parser.add_argument("--name", default="rl")
    args = parser.parse_args()
    models = [m.split("=", 1) for m in args.model]
    given = {k: float(v) for k, v in (c.split("=", 1) for c in args.cpu_minutes)}
    prompts = shapes_eval_prompts(args.specs_per_task)
    keep = [p.id for t in TASKS for p in [q for q in prompts if q.task == t][:GRID_PROMPTS]]
    results, rows, columns = {}, [], []
    for label, path in models:
        generator = EngineGenerator(Engine(path, vocabulary=unknown_words))
        scores = report_model(generator, prompts, args.images_per_prompt, keep=keep)
        minutes = _cpu_minutes(path, given, label)
        results[label] = {**scores.to_dict(), "path": path, "cpu_minutes": minutes}
        by_lang = scores.shapes.by_lang
        rows.append([label, round(scores.shapes.overall, 3),
                     *[round(scores.shapes.tasks[t], 3) for t in TASKS],
                     f"{by_lang['en']:.3f} / {by_lang['zh']:.3f}", round(scores.second_overall, 3),
                     round(scores.diversity, 4), "?" if minutes is None else round(minutes, 1)])
        columns.append([Tile(scores.samples[k]) for k in keep])
        print(label, rows[-1], flush=True)
    texts = {p.id: p.text for p in prompts}
    tiles = [Tile(tile.image, ((f"[{row_label}] " if i == 0 else "") + (texts[keep[i]] if r == 0 else ""),))
             for r, (row_label, row) in enumerate(zip([m[0] for m in models], columns, strict=True))
             for i, tile in enumerate(row)]
    grid = captioned_grid(tiles, columns=len(keep), tile_px=128, text_lines=3,
                          title="held-out prompts (columns), one row per model, same seed")
    RESULTS.mkdir(exist_ok=True)
    grid.save(RESULTS / f"{args.name}_grid.png")
    report(args.name, f"RL on critic rewards: held-out ShapesEval ({len(prompts)} prompts x "
           f"{args.images_per_prompt} images), plain generation at the default settings",
           ["model", "overall", *TASKS, "en / zh", "second judge", "diversity", "CPU min"], rows,
           {"specs_per_task": args.specs_per_task, "images_per_prompt": args.images_per_prompt,
            "results": results})


if __name__ == "__main__":
    main()
