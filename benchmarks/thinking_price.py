"""Thinking's price: wall time per picture against plain generation at the same settings
(batch 1, one thread, as a user's single request), accuracy on held-out ShapesEval (and the
second judge), network evaluations, and where the time goes, stage by stage.

    python benchmarks/thinking_price.py [--specs-per-task 3] [--configs before,after]
→ benchmarks/results/thinking_price.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch
from _common import RESULTS, report

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
}
STAGES = ("paint", "preview", "look", "decode", "critique", "compose", "encode", "repaint")


class _Plain:
    name = "plain"

    def __init__(self, engine, fields):
        self.engine, self.fields = engine, fields

    def generate(self, prompts, seeds, side):
        return [self.engine.generate(GenerationRequest(p, seed=s, width=side, height=side,
                                                       **self.fields)).images[0]
                for p, s in zip(prompts, seeds, strict=True)]


class _Thinking:
    name = "thinking"

    def __init__(self, engine, fields, options):
        self.thinker = Thinker(engine, ShapesCritic(), options)
        self.fields, self.runs = fields, []

    def generate(self, prompts, seeds, side):
        images = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            result = self.thinker.think(GenerationRequest(prompt, seed=seed, width=side,
                                                          height=side, **self.fields))
            self.runs.append({**result.timings, "nfe": result.nfe,
                              "restarts": sum(t.phase == "restart" for t in result.thoughts)})
            images.append(result.image)
        return images


def _judged(generator, prompts) -> dict:
    seconds, second = time.perf_counter(), []
    result = run_shapes_eval(generator, prompts, images_per_prompt=1,
                             on_image=lambda i, p, image: second.append(judge(image, p.spec)))
    seconds = (time.perf_counter() - seconds) / len(prompts)
    return {"overall": result.overall, "tasks": result.tasks, "by_lang": result.by_lang,
            "second_judge": sum(second) / len(second), "s_per_image": seconds,
            "passed": [r.passed for r in result.records]}


def measure(engine: Engine, name: str, prompts) -> dict:
    fields, changed = CONFIGS[name]
    options = ThinkOptions(**changed)
    plain = _judged(_Plain(engine, fields), prompts)
    thinking_gen = _Thinking(engine, fields, options)
    thinking = _judged(thinking_gen, prompts)
    runs = thinking_gen.runs
    mean = {key: sum(r.get(key, 0.0) for r in runs) / len(runs)
            for key in {k for r in runs for k in r}}
    request = GenerationRequest("x", **fields)
    return {"request": {"steps": request.steps, "guidance": request.guidance,
                        "scheduler": request.scheduler, "cfg_cutoff": request.cfg_cutoff},
            "options": dataclasses.asdict(options), "plain": plain, "thinking": thinking,
            "ratio": thinking["s_per_image"] / plain["s_per_image"], "mean": mean}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--specs-per-task", type=int, default=3)
    parser.add_argument("--configs", default="before,after")
    args = parser.parse_args()
    torch.set_num_threads(1)
    engine = Engine(args.model, vocabulary=unknown_words)
    prompts = shapes_eval_prompts(args.specs_per_task)
    results, rows = {}, []
    for name in args.configs.split(","):
        found = results[name] = measure(engine, name, prompts)
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
    RESULTS.mkdir(exist_ok=True)
    report("thinking_price", f"Thinking vs plain, {len(prompts)} held-out prompts, batch 1, one "
           "thread", ["config", "sampler", "plain s", "plain acc", "thinking s", "ratio",
                      "thinking acc", "2nd judge", "NFE", "restarts", "time by stage"], rows,
           {"results": results, "specs_per_task": args.specs_per_task})
    print(json.dumps({k: round(v["ratio"], 2) for k, v in results.items()}))


if __name__ == "__main__":
    main()
