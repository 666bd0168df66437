"""RL vs the honest baselines on held-out ShapesEval: plain generation at the default settings
(20 DDIM steps, CFG 5), judged by the verifier *and* by the second judge, with diversity across
seeds, the FID on the world feature network against the oracle's renders of the same prompts,
the CPU minutes each model cost, and a before/after grid (benchmarks/results/rl_grid.png).

Run: python benchmarks/rl.py --model "shipped base=embedded" --model "GRPO=runs/rl/grpo/model" \
        [--cpu-minutes "supervised=31.5"] [--specs-per-task 12] [--images-per-prompt 2]

The equal-minutes comparison (issue 45): ``--train METHOD`` first trains METHOD from the shipped
model for ``--minutes`` CPU minutes (process time) on the same training prompts and seed as every
other method (2 prompts x 8 pictures a step, the shipped GRPO recipe's), into RUNS/METHOD, and
resumes a stopped run; then it judges that model (``--model`` is implied):
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/rl.py --train nft --minutes 30 --name rl_equal_nft
    python benchmarks/rl.py --train nft ... --prompt-seed 7 --specs-per-task 20   # the second set
A model's CPU minutes come from its RL record (OUT/rl.json) when it has one. Reports are cached
per model (benchmarks/results/rl_cache, keyed by the UNet files), so models can be judged in
parallel processes (one --model each) and tabled together by a last run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import RESULTS, report

from huajia.drawing import Tile, captioned_grid
from huajia.engine.engine import Engine
from huajia.engine.request import LoraSpec
from huajia.evaluation.generators import EngineGenerator
from huajia.evaluation.model_report import report_model
from huajia.evaluation.prompts import TASKS, shapes_eval_prompts
from huajia.world.parser import unknown_words

PROMPT_SEED = 2025  # ShapesEval's own prompt set
GRID_PROMPTS = 2  # per task, the first specs' English and Chinese prompts alternate


def _cpu_minutes(path: str, given: dict[str, float], label: str) -> float | None:
    if label in given:
        return given[label]
    record = Path(path).parent / "rl.json"
    if record.is_file():
        return json.loads(record.read_text())["cpu_s"] / 60
    return 0.0 if path == "embedded" else None


def _cache_key(path: str, args) -> str:
    """What a cached report depends on: the model's denoiser weights and the eval's size."""
    from huajia.engine.loading import resolve_model

    model, _, lora = path.partition("+")
    folder = Path(resolve_model(model).location) / "unet"
    files = sorted(folder.glob("*")) + ([Path(lora)] if lora else [])
    stamp = [(f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in files]
    key = [path, stamp, args.specs_per_task, args.images_per_prompt]
    if args.prompt_seed != PROMPT_SEED:  # keys of the default prompt set stay as they were
        key.append(args.prompt_seed)
    return json.dumps(key)


class _Recording:
    """A generator that keeps every picture it paints (for the FID against the oracle)."""

    def __init__(self, inner):
        self.inner, self.name, self.pictures, self.texts = inner, inner.name, [], []

    def generate(self, prompts, seeds, side):
        pictures = self.inner.generate(prompts, seeds, side)
        self.pictures += pictures
        self.texts += list(prompts)
        return pictures


def _critic_score(folder: str, texts: list[str], pictures: list) -> float:
    """The distilled critic's mean score (training/critic_model.py) on the pictures: beside the
    verifier's, it tells a real gain from a critic being gamed (DRaFT's hacking)."""
    import numpy as np
    import torch

    from huajia.training.critic_model import load_critic
    from huajia.world.parser import parse

    critic = load_critic(folder, pictures[0].size[0])
    scores = []
    with torch.no_grad():
        for start in range(0, len(pictures), 64):
            part = pictures[start:start + 64]
            pixels = torch.stack([torch.from_numpy(np.array(p.convert("RGB"), dtype=np.float32) / 255)
                                  .permute(2, 0, 1) for p in part])
            scores += critic(pixels, [parse(t).spec for t in texts[start:start + 64]]).tolist()
    return float(np.mean(scores))


def _world_fid(pictures, prompts) -> float:
    """FID on the world feature network between the pictures and the oracle's renders of the
    same prompts' specs (evaluation/metrics' reference, cached)."""
    from huajia.evaluation.metrics.compute import fid
    from huajia.evaluation.metrics.features import extract, make_extractor
    from huajia.evaluation.metrics.images import batch_tensor
    from huajia.evaluation.metrics.model_eval import reference

    extractor = make_extractor("world")
    real, _ = reference(extractor, prompts, 128)
    fake, _ = extract(extractor, batch_tensor(pictures, 128))
    return fid(real, fake)


def _evaluate(label: str, path: str, prompts, keep, args) -> tuple[dict, list]:
    """A model's report, reused from benchmarks/results/rl_cache when nothing changed (so
    models can be judged in parallel processes and put in one table afterwards)."""
    from PIL import Image

    # one folder per model and prompt set, so judging a model on the second set keeps the first's
    prompt_set = "" if args.prompt_seed == PROMPT_SEED else f"__prompts{args.prompt_seed}"
    cache = RESULTS / "rl_cache" / ("".join(c if c.isalnum() else "_" for c in label) + prompt_set)
    key = _cache_key(path, args)
    if (cache / "report.json").is_file():
        saved = json.loads((cache / "report.json").read_text())
        if saved["key"] == key and (not args.critic_model or "critic_score" in saved["report"]):
            return saved["report"], [Image.open(cache / f"{k}.png").convert("RGB") for k in keep]
    model, _, lora = path.partition("+")  # MODEL+LORA: a LoRA run's file on its base
    loras = (LoraSpec(lora),) if lora else ()
    generator = _Recording(EngineGenerator(Engine(model, vocabulary=unknown_words), loras=loras))
    scores = report_model(generator, prompts, args.images_per_prompt, keep=keep)
    report = {**scores.to_dict(), "fid_world": _world_fid(generator.pictures, prompts)}
    if args.critic_model:
        report["critic_score"] = _critic_score(args.critic_model, generator.texts, generator.pictures)
    cache.mkdir(parents=True, exist_ok=True)
    for k in keep:
        scores.samples[k].save(cache / f"{k}.png")
    (cache / "report.json").write_text(json.dumps({"key": key, "report": report}, indent=1))
    return report, [scores.samples[k] for k in keep]


EQUAL_RECIPE = {"prompts_per_step": 2, "group_size": 8, "seed": 0, "steps": 100_000,
                "checkpoint_every": 2}  # the shipped GRPO run's prompts and pictures per step


def train_method(method: str, minutes: float, runs: Path, args) -> Path:
    """METHOD from the shipped model for ``minutes`` CPU minutes into RUNS/METHOD (resumed when
    a checkpoint is there); its exported pipeline folder."""
    import torch

    from huajia.engine.loading import load_pipeline, resolve_model
    from huajia.thinking.critics import make_critic
    from huajia.training.rl.recipe import RLRecipe
    from huajia.training.rl.run import CHECKPOINT, train_rl

    out = runs / (method + ("" if args.kl is None else f"_kl{args.kl:g}")
                  + ("" if args.seed is None else f"_seed{args.seed}"))
    extra = ({"critic_model": args.critic_model, "backprop_steps": args.backprop_steps}
             if method == "draft" else {})
    if args.kl is not None:  # another KL or seed is another run, in its own folder
        extra["kl"] = args.kl
    if args.seed is not None:
        extra["seed"] = args.seed
    recipe = RLRecipe(method=method, minutes=minutes, **{**EQUAL_RECIPE, **extra})
    if (out / "model").is_dir() and (out / "rl.json").is_file():
        done = json.loads((out / "rl.json").read_text())
        if done["cpu_s"] >= minutes * 60:
            return out / "model"
    pipe = load_pipeline(resolve_model("embedded"), torch.device("cpu"), torch.float32).to(torch.float32)

    def show(done: int, total: int, record: dict) -> None:
        print(f"{method} step {done} reward {record['reward']:.3f} pass {record['pass_rate']:.2f} "
              f"cpu {record['cpu_s'] / 60:.1f} min", flush=True)

    train_rl(recipe, out, resume=(out / CHECKPOINT).exists(), critic=make_critic("shapes"), pipe=pipe,
             progress=show)
    return out / "model"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", default=[],
                        help="LABEL=PATH or LABEL=PATH+LORA (repeatable).")
    parser.add_argument("--train", action="append", default=[],
                        help="METHOD: train it from the shipped model first (repeatable).")
    parser.add_argument("--minutes", type=float, default=30.0, help="--train: CPU minutes each.")
    parser.add_argument("--runs", type=Path, default=Path("runs/rl_equal"), help="--train: run folders.")
    parser.add_argument("--cpu-minutes", action="append", default=[], help="LABEL=MINUTES.")
    parser.add_argument("--critic-model", default=None,
                        help="A distilled critic (huajia train critic): --train draft's, and each "
                             "model's critic score beside the verifier's (hacking shows as a gap).")
    parser.add_argument("--backprop-steps", type=int, default=2, help="--train draft: DRaFT's K.")
    parser.add_argument("--kl", type=float, default=None,
                        help="--train: this KL weight instead of the recipe's (RUNS/METHOD_klK).")
    parser.add_argument("--seed", type=int, default=None,
                        help="--train: this seed of prompts and noise instead of 0 (RUNS/METHOD_seedS).")
    parser.add_argument("--specs-per-task", type=int, default=12)
    parser.add_argument("--images-per-prompt", type=int, default=2)
    parser.add_argument("--name", default="rl")
    parser.add_argument("--prompt-seed", type=int, default=PROMPT_SEED,
                        help="Another seed draws an independent held-out prompt set (a "
                             "confirmation run).")
    args = parser.parse_args()
    kl = ("" if args.kl is None else f" KL {args.kl:g}") + ("" if args.seed is None else f" seed {args.seed}")
    trained = [(f"{m.upper()}{kl} {args.minutes:g} min", str(train_method(m, args.minutes, args.runs, args)))
               for m in args.train]
    models = [m.split("=", 1) for m in args.model] + [list(t) for t in trained]
    if not models:
        parser.error("give --model LABEL=PATH or --train METHOD")
    given = {k: float(v) for k, v in (c.split("=", 1) for c in args.cpu_minutes)}
    prompts = shapes_eval_prompts(args.specs_per_task, seed=args.prompt_seed)
    keep = [p.id for t in TASKS for p in [q for q in prompts if q.task == t][:GRID_PROMPTS]]
    results, rows, columns = {}, [], []
    for label, path in models:
        scores, samples = _evaluate(label, path, prompts, keep, args)
        minutes = _cpu_minutes(path, given, label)
        results[label] = {**scores, "path": path, "cpu_minutes": minutes}
        rows.append([label, round(scores["overall"], 3), *[round(scores["tasks"][t], 3) for t in TASKS],
                     f"{scores['by_lang']['en']:.3f} / {scores['by_lang']['zh']:.3f}",
                     round(scores["second_judge"], 3), round(scores["diversity"], 4),
                     round(scores["fid_world"], 2) if "fid_world" in scores else "?",
                     round(scores["critic_score"], 3) if "critic_score" in scores else "-",
                     "?" if minutes is None else round(minutes, 1)])
        columns.append([Tile(image) for image in samples])
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
           ["model", "overall", *TASKS, "en / zh", "second judge", "diversity", "FID (world)", "critic",
            "CPU min"],
           rows,
           {"specs_per_task": args.specs_per_task, "images_per_prompt": args.images_per_prompt,
            "prompt_seed": args.prompt_seed,
            "results": results})


if __name__ == "__main__":
    main()
