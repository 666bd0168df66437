"""Thinking's price: wall time per picture against plain generation at the same settings
(batch 1, one thread, as a user's single request), accuracy on held-out ShapesEval (and the
second judge), network evaluations, and where the time goes, stage by stage; split by task, with
the hard prompts (two objects, counting, position, and every Chinese prompt) on their own. Each
picture's process CPU time is kept beside its wall time (the machine may be shared).

    python benchmarks/thinking_price.py [--specs-per-task 3] [--configs before,after]
→ benchmarks/results/thinking_price.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
from _common import RESULTS, report

from huajia.drawing import Tile, captioned_grid
from huajia.engine.engine import Engine
from huajia.engine.request import GenerationRequest
from huajia.evaluation.prompts import shapes_eval_prompts
from huajia.evaluation.second_judge import judge
from huajia.evaluation.shapes_eval import run_shapes_eval
from huajia.thinking.critics import ShapesCritic
from huajia.thinking.loop import Thinker, ThinkOptions
from huajia.world.parser import unknown_words

# the starting point (20 DDIM steps, CFG 5, parts painted at the request's steps)
# and today's defaults (UniPC, 14 steps; parts at 8 steps)
CONFIGS = {
    "before": ({"steps": 20, "guidance": 5.0, "scheduler": "ddim"}, {"part_steps": 0}),
    "after": ({}, {}),
    # issue 43: every first look not yet right restarted (100, the default before) or only one
    # clearly wrong (60, the default since); thinking_price_43.json's "after" row is the former
    "restart100": ({}, {"restart_below": 100.0}),
    "restart60": ({}, {"restart_below": 60.0}),
}
STAGES = ("paint", "preview", "look", "decode", "critique", "compose", "encode", "repaint")
HARD_TASKS = ("two_objects", "counting", "position")  # and every Chinese prompt


def _timed(make):
    """(picture, wall seconds, process CPU seconds) of ``make()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    picture = make()
    return picture, time.perf_counter() - wall, time.process_time() - cpu


class _Plain:
    name = "plain"

    def __init__(self, engine, fields):
        self.engine, self.fields, self.runs = engine, fields, []

    def generate(self, prompts, seeds, side):
        images = []
        for p, s in zip(prompts, seeds, strict=True):
            image, wall, cpu = _timed(lambda p=p, s=s: self.engine.generate(GenerationRequest(
                p, seed=s, width=side, height=side, **self.fields)).images[0])
            self.runs.append({"wall_s": wall, "cpu_s": cpu, "nfe": 2 * self.fields.get(
                "steps", GenerationRequest("x").steps)})
            images.append(image)
        return images


class _Thinking:
    name = "thinking"

    def __init__(self, engine, fields, options):
        self.thinker = Thinker(engine, ShapesCritic(), options)
        self.fields, self.runs = fields, []

    def generate(self, prompts, seeds, side):
        images = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            result, wall, cpu = _timed(lambda p=prompt, s=seed: self.thinker.think(
                GenerationRequest(p, seed=s, width=side, height=side, **self.fields)))
            self.runs.append({**result.timings, "nfe": result.nfe, "wall_s": wall, "cpu_s": cpu,
                              "restarts": sum(t.phase == "restart" for t in result.thoughts)})
            images.append(result.image)
        return images


def _judged(generator, prompts, keep: list | None = None) -> dict:
    """ShapesEval's verdicts and the second judge's; ``keep``: gets each picture."""
    seconds, second = time.perf_counter(), []

    def judged(i, prompt, image):
        second.append(judge(image, prompt.spec))
        if keep is not None:
            keep.append(image)

    result = run_shapes_eval(generator, prompts, images_per_prompt=1, on_image=judged)
    seconds = (time.perf_counter() - seconds) / len(prompts)
    return {"overall": result.overall, "tasks": result.tasks, "by_lang": result.by_lang,
            "second_judge": sum(second) / len(second), "s_per_image": seconds,
            "passed": [r.passed for r in result.records], "second": second}


def measure(engine: Engine, name: str, prompts, pictures: Path | None = None) -> dict:
    """One config, plain and thinking; ``pictures``: a folder for the contact sheet of both."""
    fields, changed = CONFIGS[name]
    options = ThinkOptions(**changed)
    plain_gen = _Plain(engine, fields)
    plain_images, thinking_images = [], []
    plain = _judged(plain_gen, prompts, plain_images)
    thinking_gen = _Thinking(engine, fields, options)
    thinking = _judged(thinking_gen, prompts, thinking_images)
    if pictures is not None:
        _sheet(pictures / f"{name}.png", prompts, plain, plain_images, thinking, thinking_images)
    runs = thinking_gen.runs
    split = by_task(prompts, plain, plain_gen.runs, thinking, runs)
    mean = {key: sum(r.get(key, 0.0) for r in runs) / len(runs)
            for key in {k for r in runs for k in r}}
    request = GenerationRequest("x", **fields)
    return {"request": {"steps": request.steps, "guidance": request.guidance,
                        "scheduler": request.scheduler, "cfg_cutoff": request.cfg_cutoff},
            "options": dataclasses.asdict(options), "plain": plain, "thinking": thinking,
            "ratio": thinking["s_per_image"] / plain["s_per_image"], "mean": mean,
            "by_task": split}


def _sheet(path: Path, prompts, plain: dict, plain_images: list, thinking: dict,
           thinking_images: list) -> None:
    """Plain and thinking side by side per prompt, each with both judges' verdicts."""
    tiles = []
    for i, prompt in enumerate(prompts):
        for label, judged, images in (("plain", plain, plain_images),
                                      ("thinking", thinking, thinking_images)):
            verdict = f"{label}: {'pass' if judged['passed'][i] else 'FAIL'} / 2nd " \
                      f"{'pass' if judged['second'][i] else 'FAIL'}"
            tiles.append(Tile(images[i], (verdict, prompt.text),
                              (30, 30, 30) if judged["passed"][i] else (200, 30, 30)))
    path.parent.mkdir(parents=True, exist_ok=True)
    captioned_grid(tiles, columns=8, tile_px=160, text_lines=4, font_px=11).save(path)
    print(f"wrote {path}")


def by_task(prompts, plain: dict, plain_runs: list, thinking: dict, runs: list) -> dict:
    """Per task (and the hard prompts together): accuracy by both judges, NFE, wall and CPU
    seconds per picture, plain and thinking, and thinking's CPU-time ratio to plain."""
    groups = {task: [i for i, p in enumerate(prompts) if p.task == task]
              for task in dict.fromkeys(p.task for p in prompts)}
    groups["hard"] = [i for i, p in enumerate(prompts) if p.task in HARD_TASKS or p.lang == "zh"]
    out = {}
    for name, rows in groups.items():
        def mean(values, rows=rows):
            return sum(values[i] for i in rows) / len(rows)

        row = {"prompts": len(rows)}
        for label, judged, timed in (("plain", plain, plain_runs), ("thinking", thinking, runs)):
            row[label] = {"acc": mean([float(x) for x in judged["passed"]]),
                          "second_judge": mean([float(x) for x in judged["second"]]),
                          "nfe": mean([r["nfe"] for r in timed]),
                          "wall_s": mean([r["wall_s"] for r in timed]),
                          "cpu_s": mean([r["cpu_s"] for r in timed])}
        row["cpu_ratio"] = row["thinking"]["cpu_s"] / row["plain"]["cpu_s"]
        row["restarts"] = mean([r["restarts"] for r in runs])
        out[name] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--specs-per-task", type=int, default=3)
    parser.add_argument("--configs", default="before,after")
    parser.add_argument("--pictures", type=Path, default=None,
                        help="A folder for each config's contact sheet (plain | thinking).")
    parser.add_argument("--name", default="thinking_price",
                        help="Results name (benchmarks/results/NAME.json and NAME_by_task.json).")
    args = parser.parse_args()
    torch.set_num_threads(1)
    engine = Engine(args.model, vocabulary=unknown_words)
    prompts = shapes_eval_prompts(args.specs_per_task)
    results, rows, task_rows = {}, [], []
    for name in args.configs.split(","):
        found = results[name] = measure(engine, name, prompts, args.pictures)
        mean, total = found["mean"], found["mean"]["total_s"]
        shares = " ".join(f"{stage} {mean.get(f'{stage}_s', 0.0) / total:.0%}" for stage in STAGES
                          if mean.get(f"{stage}_s", 0.0) / total >= 0.01)
        rows.append([name, f"{found['request']['scheduler'] or 'own'}:{found['request']['steps']}",
                     round(found["plain"]["s_per_image"], 2), round(found["plain"]["overall"], 3),
                     round(found["thinking"]["s_per_image"], 2), round(found["ratio"], 2),
                     round(found["thinking"]["overall"], 3),
                     round(found["thinking"]["second_judge"], 3), round(mean["nfe"], 1),
                     round(mean["restarts"], 2), shares])
        print(rows[-1], flush=True)
        for task, row in found["by_task"].items():
            task_rows.append([name, task, row["prompts"], round(row["plain"]["acc"], 3),
                              round(row["thinking"]["acc"], 3),
                              round(row["plain"]["second_judge"], 3),
                              round(row["thinking"]["second_judge"], 3),
                              round(row["thinking"]["nfe"], 1), round(row["restarts"], 2),
                              round(row["plain"]["cpu_s"], 2), round(row["thinking"]["cpu_s"], 2),
                              round(row["cpu_ratio"], 2)])
    RESULTS.mkdir(exist_ok=True)
    report(args.name, f"Thinking vs plain, {len(prompts)} held-out prompts, batch 1, one "
           "thread", ["config", "sampler", "plain s", "plain acc", "thinking s", "ratio",
                      "thinking acc", "2nd judge", "NFE", "restarts", "time by stage"], rows,
           {"results": results, "specs_per_task": args.specs_per_task})
    report(f"{args.name}_by_task", f"Thinking vs plain by task, {len(prompts)} held-out "
           "prompts (hard: two objects, counting, position and every Chinese prompt), CPU "
           "seconds per picture, one thread", ["config", "task", "prompts", "plain acc",
                                                "thinking acc", "plain 2nd", "thinking 2nd",
                                                "NFE", "restarts", "plain cpu s",
                                                "thinking cpu s", "ratio"], task_rows,
           {"specs_per_task": args.specs_per_task})
    print(json.dumps({k: round(v["ratio"], 2) for k, v in results.items()}))


if __name__ == "__main__":
    main()
