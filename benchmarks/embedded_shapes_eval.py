"""ShapesEval of a model per task at 2 step counts x 2 schedulers (plus the VAE round trip).

Run: python benchmarks/embedded_shapes_eval.py [--model embedded] [--specs-per-task 15]
"""

from __future__ import annotations

import argparse
import time

from _common import report

from huajia.engine.engine import Engine
from huajia.evaluation.generators import EngineGenerator, VaeRoundTripGenerator
from huajia.evaluation.prompts import TASKS, shapes_eval_prompts
from huajia.evaluation.shapes_eval import run_shapes_eval


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--specs-per-task", type=int, default=15)
    parser.add_argument("--images-per-prompt", type=int, default=2)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25])
    parser.add_argument("--schedulers", nargs="+", default=["ddim", "dpmpp_2m"])
    args = parser.parse_args()
    engine = Engine(args.model)
    prompts = shapes_eval_prompts(args.specs_per_task)
    settings = [("vae round trip", VaeRoundTripGenerator(engine.pipe, "oracle-vae"))]
    settings += [(f"{scheduler}, {steps} steps",
                  EngineGenerator(engine, steps=steps, scheduler=scheduler))
                 for steps in args.steps for scheduler in args.schedulers]
    rows, results = [], {}
    for label, generator in settings:
        start = time.perf_counter()
        result = run_shapes_eval(generator, prompts, args.images_per_prompt)
        seconds = time.perf_counter() - start
        results[label] = {"overall": result.overall, "tasks": result.tasks,
                          "by_lang": result.by_lang, "seconds": seconds}
        rows.append([label, round(result.overall, 3),
                     *[round(result.tasks[t], 3) for t in TASKS],
                     round(len(result.records) / seconds, 2)])
        print(label, round(result.overall, 3), flush=True)
    report("embedded_shapes_eval", f"ShapesEval of {args.model} ({len(prompts)} prompts x "
           f"{args.images_per_prompt} images)", ["setting", "overall", *TASKS, "img/s"], rows,
           {"model": args.model, "specs_per_task": args.specs_per_task,
            "images_per_prompt": args.images_per_prompt, "results": results})


if __name__ == "__main__":
    main()
