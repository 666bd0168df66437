"""Schedulers x steps x CFG (and the CFG cutoff) on held-out ShapesEval, both judges, with the
cost of each setting: network evaluations (NFE) and seconds per image on one thread at
ShapesEval's batch of 16. Resumable: settings already in the results file are kept.

    python benchmarks/speed_sweep.py [--specs-per-task 4] [--settings ddim:20:5,unipc:8:3:0.5]
→ benchmarks/results/NAME.json and NAME.png (accuracy against steps, one panel per CFG scale)
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _common import RESULTS, report
from PIL import Image

from huajia.drawing import line_chart
from huajia.engine.engine import Engine
from huajia.evaluation.generators import EngineGenerator
from huajia.evaluation.model_report import report_model
from huajia.evaluation.prompts import shapes_eval_prompts
from huajia.world.parser import unknown_words

SCHEDULERS = ("ddim", "dpmpp_2m", "unipc")
STEPS = (6, 8, 10, 14, 20)
GUIDANCE = (3.0, 5.0, 7.0)


def grid() -> list[str]:
    """Every scheduler and step count at each CFG scale, the default scale first."""
    return [f"{s}:{n}:{g:g}" for g in (5.0, 3.0, 7.0) for s in SCHEDULERS for n in STEPS]


def parse(setting: str) -> dict:
    """'SCHEDULER:STEPS:CFG[:CUTOFF]' → the request fields it sets."""
    parts = setting.split(":")
    fields = {"scheduler": parts[0], "steps": int(parts[1]), "guidance": float(parts[2])}
    fields["cfg_cutoff"] = float(parts[3]) if len(parts) > 3 else 1.0
    return fields


def nfe(fields: dict) -> float:
    """Network evaluations per image: two per guided step, one after the cutoff."""
    steps, cutoff = fields["steps"], fields["cfg_cutoff"]
    guided = steps if cutoff >= 1 else max(1, round(cutoff * steps))
    return 2 * guided + (steps - guided)


def measure(engine: Engine, setting: str, prompts, images_per_prompt: int) -> dict:
    fields = parse(setting)
    generator = EngineGenerator(engine, steps=fields["steps"], guidance=fields["guidance"],
                                scheduler=fields["scheduler"], cfg_cutoff=fields["cfg_cutoff"])
    start = time.perf_counter()
    scores = report_model(generator, prompts, images_per_prompt).to_dict()
    seconds = time.perf_counter() - start
    return {**fields, "overall": scores["overall"], "tasks": scores["tasks"],
            "by_lang": scores["by_lang"], "second_judge": scores["second_judge"],
            "diversity": scores["diversity"], "n_images": scores["n_images"], "nfe": nfe(fields),
            "s_per_image": seconds / scores["n_images"]}


def plot(results: dict, path) -> None:
    panels = []
    for guidance in sorted({r["guidance"] for r in results.values()}):
        steps = [n for n in STEPS if all(f"{s}:{n}:{guidance:g}" in results for s in SCHEDULERS)]
        if len(steps) < 2:
            continue
        series = {s: [results[f"{s}:{n}:{guidance:g}"]["overall"] for n in steps]
                  for s in SCHEDULERS}
        pictures = next(iter(results.values()))["n_images"]
        panels.append(line_chart(series, f"held-out ShapesEval ({pictures} pictures each), CFG "
                                 f"{guidance:g}; x: {', '.join(map(str, steps))} steps",
                                 x_label="steps", y_range=(0.3, 0.7)))
    if panels:
        sheet = Image.new("RGB", (panels[0].width, sum(p.height for p in panels)), "white")
        for i, panel in enumerate(panels):
            sheet.paste(panel, (0, i * panels[0].height))
        sheet.save(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--specs-per-task", type=int, default=4)
    parser.add_argument("--images-per-prompt", type=int, default=2)
    parser.add_argument("--settings", default="", help="Comma-separated SCHEDULER:STEPS:CFG"
                        "[:CUTOFF] (default: the whole grid).")
    parser.add_argument("--name", default="speed_sweep")
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = RESULTS / f"{args.name}.json"
    key = [args.model, args.specs_per_task, args.images_per_prompt]
    saved = json.loads(path.read_text()) if path.is_file() else {}
    results = saved.get("results", {}) if saved.get("key") == key else {}
    engine = Engine(args.model, vocabulary=unknown_words)
    prompts = shapes_eval_prompts(args.specs_per_task)
    for setting in [s for s in args.settings.split(",") if s] or grid():
        if setting not in results:
            results[setting] = measure(engine, setting, prompts, args.images_per_prompt)
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps({"key": key, "results": results}, indent=1))
            r = results[setting]
            print(setting, round(r["overall"], 3), round(r["second_judge"], 3),
                  round(r["s_per_image"], 3), flush=True)
    plot(results, RESULTS / f"{args.name}.png")
    rows = [[name, r["nfe"], round(r["s_per_image"], 3), round(r["overall"], 3),
             round(r["second_judge"], 3), round(r["diversity"], 3)]
            for name, r in sorted(results.items(), key=lambda kv: kv[1]["s_per_image"])]
    out = report(args.name, f"Sampler sweep ({len(prompts) * args.images_per_prompt} held-out "
                 "pictures per setting, one thread, batch 16)",
                 ["setting (scheduler:steps:cfg[:cutoff])", "NFE", "s/image", "ShapesEval",
                  "second judge", "diversity"], rows, {"key": key, "results": results})
    print(out)


if __name__ == "__main__":
    main()
