"""What the base model scores on the held-out hexagon prompts with a shape it knows in the
hexagon's place: the same colours, counts and phrasings (en + zh), the same image seeds. A
hexagon LoRA is held to ≥ 0.7 on these prompts; this is what the base model manages with the
shapes it was trained on, split by language and by the count asked for.
Run: python benchmarks/concept_ceiling.py [--shapes circle,square,triangle,star]
"""

from __future__ import annotations

import argparse

from _common import report

from huajia.engine.engine import Engine
from huajia.evaluation.generators import EngineGenerator
from huajia.evaluation.prompts import concept_prompts
from huajia.evaluation.shapes_eval import run_shapes_eval

SPLITS = ("en", "zh", "count 1", "count 2")


def split_scores(prompts, result) -> dict[str, float]:
    """Pass rate per language (the result's own by_lang: one task) and per count asked for."""
    counts = {p.id: p.spec.groups[0].count for p in prompts}

    def count_rate(n: int) -> float:
        passed = [r.passed for r in result.records if counts[r.prompt_id] == n]
        return sum(passed) / len(passed)

    rates = {**result.by_lang, "count 1": count_rate(1), "count 2": count_rate(2)}
    return {key: round(rates[key], 3) for key in SPLITS}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default="circle,square,triangle,star")
    parser.add_argument("--concept-specs", type=int, default=20,
                        help="Specs (x2 languages x2 images), as lora_concept.py.")
    parser.add_argument("--name", default="concept_ceiling")
    args = parser.parse_args()
    generator = EngineGenerator(Engine("embedded"))
    rows = []
    for shape in args.shapes.split(","):
        prompts = concept_prompts("hexagon", args.concept_specs, stand_in=shape)
        result = run_shapes_eval(generator, prompts, images_per_prompt=2)
        rows.append([shape, round(result.overall, 3), *split_scores(prompts, result).values()])
    report(args.name, "Base model on the hexagon prompts, a known shape in the hexagon's place",
           ["shape", "accuracy", *SPLITS], rows,
           {"images_per_shape": 4 * args.concept_specs})


if __name__ == "__main__":
    main()
