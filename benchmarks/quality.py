"""Distribution quality beside correctness: FID, KID, IS, precision/recall and diversity (world
features) and ShapesEval, for the oracle (other seeds), plain generation over CFG, thinking and
best-of-N with early stopping at about thinking's compute, on the same held-out prompts.

    python benchmarks/quality.py [--settings oracle,cfg3,cfg5,cfg7,cfg9,thinking,best-of-10]
                                 [--specs-per-task 6] [--images-per-prompt 2]
Each setting's numbers are saved in benchmarks/results/quality_parts/ (so settings can run in
parallel processes); the last run tables every saved part → benchmarks/results/quality.json,
and draws benchmarks/results/quality.png.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from _common import RESULTS, report

from huajia.evaluation.metrics.model_eval import SettingResult, evaluate_setting, reference, report_picture
from huajia.evaluation.prompts import shapes_eval_prompts

PARTS = RESULTS / "quality_parts"
ORDER = ["oracle", "cfg3", "cfg5", "cfg7", "cfg9", "thinking", "best-of-10"]
METRICS = ["fid", "kid", "is", "precision-recall", "diversity"]


class OracleGenerator:
    """The oracle's own pictures of each prompt, at the generators' seeds (not the reference's)."""
    name = "oracle"

    def __init__(self, prompts):
        self.specs = {p.text: p.spec for p in prompts}

    def generate(self, prompts, seeds, side):
        from huajia.world.render import render
        from huajia.world.sampler import scene_for

        return [render(scene_for(self.specs[p], s), side) for p, s in zip(prompts, seeds, strict=True)]


def _generator(name: str, engine, prompts, steps: int):
    from huajia.evaluation.generators import EngineGenerator
    from huajia.evaluation.thinking_generators import BestOfNGenerator, ThinkingGenerator
    from huajia.thinking.critics import make_critic
    from huajia.thinking.options import ThinkOptions

    if name == "oracle":
        return "oracle (other seeds)", None, OracleGenerator(prompts)
    if name.startswith("cfg"):
        scale = float(name[3:])
        return f"plain, CFG {scale:g}", scale, EngineGenerator(engine, steps=steps, guidance=scale)
    if name == "thinking":
        thinker = ThinkingGenerator(engine, make_critic("shapes"), ThinkOptions(), steps)
        return "thinking (default)", None, thinker
    if name.startswith("best-of-"):
        n = int(name.removeprefix("best-of-"))
        return (f"best-of-{n}, early stop", None,
                BestOfNGenerator(engine, make_critic("shapes"), n, steps))
    raise SystemExit(f"unknown setting {name}; use {', '.join(ORDER)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--settings", default=",".join(ORDER))
    parser.add_argument("--specs-per-task", type=int, default=6)
    parser.add_argument("--images-per-prompt", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    from huajia.engine.engine import Engine
    from huajia.evaluation.metrics.features import make_extractor
    from huajia.world.parser import unknown_words

    prompts = shapes_eval_prompts(args.specs_per_task)
    extractor = make_extractor("world")
    real, _ = reference(extractor, prompts)
    engine = None
    PARTS.mkdir(parents=True, exist_ok=True)
    for name in [s for s in args.settings.split(",") if s]:
        if name != "oracle" and engine is None:
            engine = Engine(args.model, vocabulary=unknown_words)
        label, cfg, generator = _generator(name, engine, prompts, args.steps)
        def tell(stage: str, done: int, total: int) -> None:
            if done % 24 == 0 or done == total:
                print(f"{stage}: {done}/{total}", flush=True)

        result = evaluate_setting(label, cfg, generator, prompts, extractor, real, METRICS,
                                  args.images_per_prompt, progress=tell)
        nfe = float(np.mean(generator.nfe)) if getattr(generator, "nfe", None) else (
            None if name == "oracle" else 2.0 * args.steps)
        part = {"name": name, "label": label, "cfg": cfg, "metrics": result.metrics, "shapes": result.shapes,
                "nfe": nfe, "n_images": len(result.pictures), "specs_per_task": args.specs_per_task}
        (PARTS / f"{name}.json").write_text(json.dumps(part, indent=1), encoding="utf-8")
        report_picture([result], label).save(PARTS / f"{name}.png")
        print(json.dumps({k: part[k] for k in ("label", "metrics", "nfe")}), flush=True)
    _table(args)


def _table(args) -> None:
    parts = [json.loads((PARTS / f"{n}.json").read_text()) for n in ORDER if (PARTS / f"{n}.json").is_file()]
    rows = [[p["label"], p["metrics"].get("fid"), p["metrics"].get("kid"), p["metrics"].get("is"),
             p["metrics"].get("precision"), p["metrics"].get("recall"), p["metrics"].get("diversity"),
             p["shapes"]["overall"], p["nfe"] if p["nfe"] is not None else "-"] for p in parts]
    swept = [SettingResult(p["label"], p["cfg"], p["shapes"], p["metrics"]) for p in parts]
    report_picture(swept, f"{args.model}, world features").save(RESULTS / "quality.png")
    report("quality", "Picture quality and correctness on held-out ShapesEval (world features)",
           ["images", "FID", "KID", "IS", "precision", "recall", "diversity", "ShapesEval", "NFE/image"],
           rows, {"model": args.model, "features": "world", "parts": parts,
                  "clip_score": "not measured here: no real CLIP is on this machine (a tiny random "
                                "CLIP in the tests shows only the code path)"})


if __name__ == "__main__":
    main()
