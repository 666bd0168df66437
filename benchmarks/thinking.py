"""Thinking vs plain vs best-of-N at matched compute, on held-out ShapesEval prompts.

Methods: plain (1 sample), best-of-N by the same critic (N matched to thinking's mean NFE),
thinking (default options), and ablations: repaint in place only (no compose), no pauses
(reflect + compose/repaint, TwiG-like), steering at the pauses switched on.
NFE = network evaluations per image (a CFG step costs 2; a regional step 2 + regions).
Run: python benchmarks/thinking.py [--model embedded] [--specs-per-task 6] [--methods …]
"""

from __future__ import annotations

import argparse
import time

from _common import report

from huajia.engine.engine import Engine
from huajia.evaluation.generators import EngineGenerator
from huajia.evaluation.prompts import TASKS, shapes_eval_prompts
from huajia.evaluation.shapes_eval import run_shapes_eval
from huajia.evaluation.thinking_generators import BestOfNGenerator, ThinkingGenerator
from huajia.thinking.critics import ShapesCritic
from huajia.thinking.loop import ThinkOptions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--specs-per-task", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--methods", default="plain,default,no-compose,no-pauses,steer,best-of-n",
                        help="Comma-separated subset of the rows to run.")
    parser.add_argument("--match-nfe", type=float, default=240.0,
                        help="best-of-N's NFE when the default row is not run.")
    parser.add_argument("--name", default="thinking",
                        help="Results file name (benchmarks/results/NAME.json), so subsets run "
                             "side by side do not overwrite each other.")
    args = parser.parse_args()
    engine = Engine(args.model)
    critic = ShapesCritic()
    prompts = shapes_eval_prompts(args.specs_per_task)
    results, rows = {}, []

    def run(label, generator, nfe_of):
        start = time.perf_counter()
        result = run_shapes_eval(generator, prompts, images_per_prompt=1)
        nfe = nfe_of(generator)
        results[label] = {"overall": result.overall, "tasks": result.tasks, "nfe": nfe,
                          "seconds": time.perf_counter() - start}
        rows.append([label, round(nfe, 1), round(result.overall, 3),
                     *[round(result.tasks[t], 3) for t in TASKS]])
        print(label, round(nfe, 1), round(result.overall, 3), flush=True)

    def mean_nfe(generator):
        return sum(generator.nfe) / len(generator.nfe)

    wanted = set(args.methods.split(","))
    if "plain" in wanted:
        run("plain, 1 sample", EngineGenerator(engine, steps=args.steps),
            lambda g: 2 * args.steps)
    variants = {  # name: (row label, options)
        "default": ("thinking (default)", ThinkOptions()),
        "no-compose": ("thinking, repaint in place only (--compose-tries 0)",
                       ThinkOptions(compose_tries=0)),
        "no-pauses": ("thinking, no pauses (reflect + compose/repaint)",
                      ThinkOptions(pauses=0)),
        "steer": ("thinking, steering at pauses (--steer)", ThinkOptions(steer=True)),
    }
    for name, (label, options) in variants.items():
        if name in wanted:
            run(label, ThinkingGenerator(engine, critic, options, args.steps, name=name),
                mean_nfe)
    if "best-of-n" in wanted:
        matched = results.get("thinking (default)", {}).get("nfe", args.match_nfe)
        n = max(1, round(matched / (2 * args.steps)))
        run(f"best-of-{n} by the same critic", BestOfNGenerator(engine, critic, n, args.steps),
            mean_nfe)
    report(args.name, f"Thinking vs plain vs best-of-N ({len(prompts)} held-out prompts)",
           ["method", "NFE/image", "overall", *TASKS], rows,
           {"model": args.model, "specs_per_task": args.specs_per_task, "methods": args.methods,
            "results": results})


if __name__ == "__main__":
    main()
