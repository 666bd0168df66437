"""Distribution quality beside correctness: FID, KID, IS, precision/recall and diversity (world
features) and ShapesEval, for the oracle (other seeds), plain generation over CFG, thinking and
best-of-N with early stopping at about thinking's compute, on the same held-out prompts.

    python benchmarks/quality.py [--settings oracle,cfg3,cfg5,cfg7,cfg9,thinking,best-of-10]
                                 [--specs-per-task 6] [--images-per-prompt 2]
Each setting's pictures and ShapesEval are saved in benchmarks/results/quality_parts/ (so
settings can run in parallel processes, and the metrics can be recomputed without painting);
every run then measures all saved parts → benchmarks/results/quality.json and quality.png.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from _common import RESULTS, report
from PIL import Image

from huajia.evaluation.metrics.model_eval import measured, reference, report_picture
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


def _generate(name: str, engine, prompts, args) -> None:
    """Paint and judge one setting; its pictures go to quality_parts/NAME/ (so the metrics can
    be computed, or recomputed with another feature network, without painting again)."""
    from huajia.evaluation.shapes_eval import run_shapes_eval

    label, cfg, generator = _generator(name, engine, prompts, args.steps)
    folder = PARTS / name
    folder.mkdir(parents=True, exist_ok=True)
    count = [0]

    def keep(index, prompt, picture) -> None:
        picture.save(folder / f"{count[0]:04d}.png")
        count[0] += 1

    def tell(done: int) -> None:
        print(f"{label}: {count[0]}/{len(prompts) * args.images_per_prompt}", flush=True)

    scores = run_shapes_eval(generator, prompts, args.images_per_prompt, progress=tell, on_image=keep)
    nfe = float(np.mean(generator.nfe)) if getattr(generator, "nfe", None) else (
        None if name == "oracle" else 2.0 * args.steps)
    part = {"name": name, "label": label, "cfg": cfg, "nfe": nfe, "n_images": count[0],
            "specs_per_task": args.specs_per_task,
            "shapes": {"overall": scores.overall, "tasks": scores.tasks, "by_lang": scores.by_lang}}
    (PARTS / f"{name}.json").write_text(json.dumps(part, indent=1), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--settings", default=",".join(ORDER), help="settings to paint ('' : only table)")
    parser.add_argument("--specs-per-task", type=int, default=6)
    parser.add_argument("--images-per-prompt", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    from huajia.engine.engine import Engine
    from huajia.world.parser import unknown_words

    prompts = shapes_eval_prompts(args.specs_per_task)
    PARTS.mkdir(parents=True, exist_ok=True)
    engine = None
    for name in [s for s in args.settings.split(",") if s]:
        if name != "oracle" and engine is None:
            engine = Engine(args.model, vocabulary=unknown_words)
        _generate(name, engine, prompts, args)
    _table(args, prompts)


def _table(args, prompts) -> None:
    """Every painted setting, measured with the shipped world features against the oracle's
    pictures of the same prompts (other seeds)."""
    from huajia.evaluation.metrics.features import make_extractor
    from huajia.evaluation.second_judge import judge

    extractor = make_extractor("world")
    real, _ = reference(extractor, prompts)
    parts, results = [], []
    for name in ORDER:
        if not (PARTS / f"{name}.json").is_file():
            continue
        part = json.loads((PARTS / f"{name}.json").read_text())
        files = sorted((PARTS / name).glob("*.png"))
        pictures = [Image.open(f).convert("RGB") for f in files]
        texts = [prompts[i // args.images_per_prompt].text for i in range(len(pictures))]
        result = measured(part["label"], part["cfg"], part["shapes"], pictures, texts, extractor, real,
                          METRICS)
        part["metrics"] = result.metrics
        # the critic thinking and best-of-N search against is ShapesEval's verifier: a second,
        # separately written judge says whether their gains are real
        specs = [prompts[i // args.images_per_prompt].spec for i in range(len(pictures))]
        verdicts = [judge(picture, spec) for picture, spec in zip(pictures, specs, strict=True)]
        part["second_judge"] = float(np.mean(verdicts))
        results.append(result)
        parts.append(part)
    rows = [[p["label"], p["metrics"].get("fid"),
             f"{p['metrics'].get('kid', 0):.2f} ± {p['metrics'].get('kid_std', 0):.2f}",
             p["metrics"].get("is"),
             p["metrics"].get("precision"), p["metrics"].get("recall"), p["metrics"].get("diversity"),
             p["shapes"]["overall"], p["second_judge"], p["nfe"] if p["nfe"] is not None else "-"]
            for p in parts]
    report_picture(results, f"{args.model}, world features").save(RESULTS / "quality.png")
    report("quality", "Picture quality and correctness on held-out ShapesEval (world features)",
           ["images", "FID", "KID ± std", "IS", "precision", "recall", "diversity", "ShapesEval",
            "second judge", "NFE/image"],
           rows, {"model": args.model, "features": extractor.name, "feature_network": extractor.identity,
                  "images_per_setting": parts[0]["n_images"] if parts else 0, "parts": parts,
                  "clip_score": "not measured here: no real CLIP is on this machine (a tiny random "
                                "CLIP in the tests shows only the code path)"})


if __name__ == "__main__":
    main()
