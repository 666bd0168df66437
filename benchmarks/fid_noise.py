"""How much of an FID gap on world features is noise? (issue 45's shipping rule: a candidate may
not lose FID)

Paints ShapesEval's held-out prompts (as benchmarks/rl.py does: same prompts, seeds and
pictures per prompt) with each model, and bootstraps FID on the world feature network over the
prompts: each resample draws prompts with replacement and takes their oracle renders and every
model's pictures of them, so the models' FIDs are paired. Reports each model's FID, its 95 %
interval, and the gap to the first model with its interval and the share of resamples where the
gap is above zero.

Run: python benchmarks/fid_noise.py --model shipped=embedded --model "DPO=runs/rl_equal/dpo/model"
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import report
from rl import PROMPT_SEED
from scipy import linalg


def frechet(real: np.ndarray, fake: np.ndarray) -> float:
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    root, _ = linalg.sqrtm(s1 @ s2, disp=False)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root.real))


def features(path: str, prompts, images_per_prompt: int):
    """The model's pictures of ``prompts`` painted and recorded as benchmarks/rl.py paints them,
    as world features, prompt-major whatever order the runner painted in."""
    from rl import _Recording

    from huajia import Engine
    from huajia.evaluation.generators import EngineGenerator
    from huajia.evaluation.metrics.features import extract, make_extractor
    from huajia.evaluation.metrics.images import batch_tensor
    from huajia.evaluation.model_report import report_model
    from huajia.world.parser import unknown_words

    recording = _Recording(EngineGenerator(Engine(path, vocabulary=unknown_words)))
    report_model(recording, prompts, images_per_prompt)
    by_text: dict[str, list] = {}
    for text, picture in zip(recording.texts, recording.pictures, strict=True):
        by_text.setdefault(text, []).append(picture)
    taken: dict[str, int] = {}
    ordered = []
    for prompt in prompts:
        start = taken.get(prompt.text, 0)
        ordered += by_text[prompt.text][start:start + images_per_prompt]
        taken[prompt.text] = start + images_per_prompt
    fake, _ = extract(make_extractor("world"), batch_tensor(ordered, 128))
    return fake.double().numpy().reshape(len(prompts), images_per_prompt, -1)


def main() -> None:
    from huajia.evaluation.metrics.features import make_extractor
    from huajia.evaluation.metrics.model_eval import REFERENCE_SEEDS, reference
    from huajia.evaluation.prompts import shapes_eval_prompts

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", required=True, help="LABEL=PATH (repeatable).")
    parser.add_argument("--specs-per-task", type=int, default=12)
    parser.add_argument("--images-per-prompt", type=int, default=2)
    parser.add_argument("--prompt-seed", type=int, default=PROMPT_SEED)
    parser.add_argument("--resamples", type=int, default=500)
    parser.add_argument("--name", default="fid_noise")
    args = parser.parse_args()
    prompts = shapes_eval_prompts(args.specs_per_task, seed=args.prompt_seed)
    real, _ = reference(make_extractor("world"), prompts, 128)
    real = real.double().numpy().reshape(len(prompts), len(REFERENCE_SEEDS), -1)
    models = [m.split("=", 1) for m in args.model]
    fakes = {label: features(path, prompts, args.images_per_prompt) for label, path in models}
    rng = np.random.default_rng(0)
    draws = {label: [] for label, _ in models}
    for _ in range(args.resamples):
        pick = rng.integers(len(prompts), size=len(prompts))
        reals = real[pick].reshape(-1, real.shape[-1])
        for label, fake in fakes.items():
            draws[label].append(frechet(reals, fake[pick].reshape(-1, fake.shape[-1])))
    first = models[0][0]
    rows, results = [], {}
    for label, fake in fakes.items():
        value = frechet(real.reshape(-1, real.shape[-1]), fake.reshape(-1, fake.shape[-1]))
        boot = np.array(draws[label])
        gap = boot - np.array(draws[first])
        full_gap = value - results[first]["fid"] if label != first else 0.0
        results[label] = {"fid": value, "interval": np.percentile(boot, [2.5, 97.5]).tolist(),
                          "gap": full_gap, "gap_interval": np.percentile(gap, [2.5, 97.5]).tolist(),
                          "gap_above_zero": float((gap > 0).mean())}
        r = results[label]
        rows.append([label, round(value, 1), f"{r['interval'][0]:.1f}-{r['interval'][1]:.1f}",
                     "-" if label == first else f"{full_gap:+.1f}",
                     "-" if label == first else f"{r['gap_interval'][0]:+.1f} to {r['gap_interval'][1]:+.1f}",
                     "-" if label == first else f"{r['gap_above_zero']:.3f}"])
    report(args.name, f"FID on world features, {len(prompts)} prompts × {args.images_per_prompt} "
           f"(prompt seed {args.prompt_seed}), paired bootstrap over prompts ({args.resamples})",
           ["model", "FID", "95% interval", f"gap to {first}", "gap 95% interval", "share of gaps > 0"],
           rows, {"prompt_seed": args.prompt_seed, "results": results})


if __name__ == "__main__":
    main()
