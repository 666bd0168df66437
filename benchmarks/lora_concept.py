"""Teach the embedded model a concept it never saw (default: hexagon / 六边形) with a LoRA on
this CPU, and measure: concept accuracy (verifier, held-out prompts) before and after, and
ShapesEval on the old concepts before and after. Goal: accuracy ≈ 0 → ≥ 0.7 with a ≤ 0.05 drop.
Beside the strict accuracy (shape, colour and count all right), the same pictures are broken
down: is the concept drawn at all, in the asked count, in the asked colour.

The LoRA sees the concept's pictures (one group of a familiar training scene turned into the
concept) and, as reg images (prior preservation), as many pictures of old concepts.
Defaults: ``LoraRecipe``'s, the LoCon recipe that did best here (attention and convolutions,
rank 16, alpha 16, lr 1e-3, text encoder 3e-4), captions that leave colours out as often as the base model's
did (--colour-drop 0.3). Best measured: --mask-weight 3 --reg-mask (masked loss on the
concept's objects and on the reg pictures' objects; README). Run: python
benchmarks/lora_concept.py [--concept hexagon] [--steps 800] [--images 600] [--conv-rank 0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import report
from concept_ceiling import SPLITS, split_scores

from huajia.curation.runner import Recipe, curate
from huajia.engine.engine import Engine
from huajia.engine.request import LoraSpec
from huajia.evaluation.generators import EngineGenerator
from huajia.evaluation.prompts import TASKS, concept_prompts, shapes_eval_prompts
from huajia.evaluation.shapes_eval import run_shapes_eval
from huajia.training.lora import LoraRecipe, train_lora
from huajia.world import vocab
from huajia.world.dataset import write_dataset
from huajia.world.detect import detect


class Remembering:
    """A generator that keeps its pictures, so a second look judges the same images."""

    def __init__(self, generator: EngineGenerator):
        self.generator, self.name, self.images = generator, generator.name, {}

    def generate(self, prompts, seeds, side):
        images = self.generator.generate(prompts, seeds, side)
        self.images.update(zip(zip(prompts, seeds, strict=True), images, strict=True))
        return images


def concept_breakdown(remembered: Remembering, taught, prompts, concept: str) -> dict[str, float]:
    """Why concept prompts fail: is the concept drawn at all (any colour, any count), in the
    asked count, in the asked colour? Judged on the pictures behind ``taught``'s records;
    diagnostics beside the strict accuracy, not instead."""
    attr = "shape" if concept in vocab.ids(vocab.SHAPES) else "texture"
    groups = {p.id: p.spec.groups[0] for p in prompts}
    tallies = {"drawn": 0, "count right": 0, "colour right": 0}
    for record in taught.records:
        group = groups[record.prompt_id]
        _, found = detect(remembered.images[(record.prompt, record.seed)])
        hits = [d for d in found if getattr(d, attr) == concept]
        tallies["drawn"] += bool(hits)
        tallies["count right"] += len(hits) == group.count
        tallies["colour right"] += any(d.colour == group.colour for d in hits)
    return {name: round(v / len(taught.records), 3) for name, v in tallies.items()}


def measure(engine: Engine, concept: str, loras: tuple, specs: int, concept_specs: int) -> tuple:
    generator = EngineGenerator(engine, loras=loras)
    remembered = Remembering(generator)
    prompts = concept_prompts(concept, concept_specs)
    taught = run_shapes_eval(remembered, prompts, images_per_prompt=2)
    breakdown = concept_breakdown(remembered, taught, prompts, concept)
    breakdown |= split_scores(prompts, taught)
    old = run_shapes_eval(generator, shapes_eval_prompts(specs), images_per_prompt=2)
    return taught.overall, old.overall, breakdown


def _new_words(text: str, concept: str) -> tuple[str, ...]:
    if text != "concept":
        return tuple(w.strip() for w in text.split(",") if w.strip())
    found = next(c for c in (*vocab.SHAPES, *vocab.TEXTURES) if c.id == concept)
    return (*found.en, *found.zh)


def _earlier_base(args) -> tuple:
    """The base row of an earlier run: the base model's pictures do not depend on the LoRA."""
    earlier = json.loads(Path(args.base_from).read_text(encoding="utf-8"))
    same = (earlier["concept"] == args.concept
            and earlier.get("concept_images") == 4 * args.concept_specs
            and earlier.get("old_concept_images") == 4 * args.specs_per_task * len(TASKS))
    if not same:
        raise SystemExit(f"{args.base_from} measured another concept or prompt count")
    row = earlier["rows"][0]
    names = ("drawn", "count right", "colour right", *SPLITS)
    return row[1], row[2], dict(zip(names[:len(row) - 4], row[4:], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concept", default="hexagon")
    parser.add_argument("--model", default="embedded",
                        help="Base model to teach (a diffusers folder, e.g. an RL candidate).")
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--steps", type=int, default=LoraRecipe.steps)
    parser.add_argument("--batch", type=int, default=LoraRecipe.batch)
    parser.add_argument("--seed", type=int, default=0, help="The LoRA's training seed.")
    parser.add_argument("--lr", type=float, default=LoraRecipe.lr)
    parser.add_argument("--text-encoder-lr", type=float, default=LoraRecipe.text_encoder_lr,
                        help="0: no LoRA on the text encoder.")
    parser.add_argument("--new-words", default="",
                        help="Pivotal tuning: comma-separated words taught as new tokens "
                             "('concept': the concept's English and Chinese words).")
    parser.add_argument("--new-word-lr", type=float, default=None)
    parser.add_argument("--new-word-init", default=None,
                        help="Start the new words from this word (e.g. circle).")
    parser.add_argument("--mask-weight", type=float, default=1.0,
                        help="Masked loss: the concept's pixels (alpha masks) weigh this "
                             "much more (1: off).")
    parser.add_argument("--reg-mask", action="store_true",
                        help="With --mask-weight, also weigh the reg pictures' objects (all of "
                             "them) over their background, so old shapes are kept as firmly as "
                             "the new one is taught.")
    parser.add_argument("--ema-decay", type=float, default=0.0,
                        help="Save an EMA of the LoRA weights (0: off).")
    parser.add_argument("--rank", type=int, default=LoraRecipe.rank)
    parser.add_argument("--alpha", type=float, default=LoraRecipe.alpha)
    parser.add_argument("--conv-rank", type=int, default=LoraRecipe.conv_rank,
                        help="LoCon: also the UNet's convolutions (0: attention only).")
    parser.add_argument("--colour-drop", type=float, default=0.3,
                        help="Captions without colours, as in the base model's recipe (0: "
                             "every caption names its colours).")
    parser.add_argument("--prior-target", default="images", choices=("images", "base"),
                        help="What the reg half learns: its own noise, or the base model's "
                             "prediction (output preservation).")
    parser.add_argument("--prior-loss-weight", type=float, default=1.0)
    parser.add_argument("--lr-scheduler", default="constant",
                        help="constant, constant_with_warmup, cosine or linear.")
    parser.add_argument("--lr-warmup-steps", type=int, default=0)
    parser.add_argument("--specs-per-task", type=int, default=6,
                        help="Old-concept ShapesEval specs per task (x2 languages x2 images).")
    parser.add_argument("--concept-specs", type=int, default=20,
                        help="Held-out concept specs (x2 languages x2 images).")
    parser.add_argument("--base-from", default=None,
                        help="Take the base-model row from this earlier results JSON (same "
                             "concept and prompt counts) instead of measuring it again.")
    parser.add_argument("--work", default=None, help="Keep data and LoRA here.")
    parser.add_argument("--name", default="lora_concept",
                        help="Results file name (benchmarks/results/NAME.json).")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="huajia-lora-"))
    write_dataset(work / "raw", args.images, seed=11, concept=args.concept,
                  colour_drop=args.colour_drop, alpha_mask=args.mask_weight > 1)
    write_dataset(work / "reg_raw", args.images, seed=12, split="train",
                  colour_drop=args.colour_drop, alpha_mask=args.mask_weight > 1 and args.reg_mask)
    ops = (("image_text_similarity_filter", {"hf_clip": "shapes-verifier", "min_score": 0.99}),
           ("image_deduplicator", {"method": "phash"}))
    curated = curate(Recipe(str(work / "raw"), str(work / "clean"), ops))
    curate(Recipe(str(work / "reg_raw"), str(work / "reg"), ops))
    new_words = _new_words(args.new_words, args.concept)
    engine = Engine(args.model)
    before = (_earlier_base(args) if args.base_from else
              measure(engine, args.concept, (), args.specs_per_task, args.concept_specs))
    start = time.perf_counter()
    path = train_lora(LoraRecipe(data=str(work / "clean"), out=str(work / "lora"), model=args.model,
                                 rank=args.rank, alpha=args.alpha, steps=args.steps,
                                 batch=args.batch, seed=args.seed,
                                 conv_rank=args.conv_rank, conv_alpha=args.alpha,
                                 lr=args.lr, text_encoder_lr=args.text_encoder_lr or None,
                                 train_text_encoder=args.text_encoder_lr > 0,
                                 new_words=new_words, new_word_lr=args.new_word_lr,
                                 new_word_init=args.new_word_init,
                                 reg_data=str(work / "reg"),
                                 prior_target=args.prior_target,
                                 prior_loss_weight=args.prior_loss_weight,
                                 lr_scheduler=args.lr_scheduler,
                                 lr_warmup_steps=args.lr_warmup_steps,
                                 mask_weight=args.mask_weight, ema_decay=args.ema_decay,
                                 sample_every=0))
    minutes = (time.perf_counter() - start) / 60
    after = measure(engine, args.concept, (LoraSpec(str(path)),), args.specs_per_task,
                    args.concept_specs)
    conv = f", conv rank {args.conv_rank}" if args.conv_rank else ""
    conv += f", new words {'/'.join(new_words)}" if new_words else ""
    conv += f" from '{args.new_word_init}'" if new_words and args.new_word_init else ""
    conv += "" if args.text_encoder_lr > 0 else ", no text-encoder LoRA"
    conv += f", mask weight {args.mask_weight:g}" if args.mask_weight > 1 else ""
    conv += " (reg pictures too)" if args.mask_weight > 1 and args.reg_mask else ""
    conv += f", EMA {args.ema_decay:g}" if args.ema_decay else ""
    rows = [["base model", round(before[0], 3), round(before[1], 3), "-",
             *(before[2].get(name, "-") for name in after[2])],
            [f"+ LoRA (rank {args.rank}{conv}, alpha {args.alpha:g}, {args.steps} steps, "
             f"batch {args.batch}, seed {args.seed}, "
             f"lr {args.lr:g} {args.lr_scheduler}, "
             f"reg images → {args.prior_target} x{args.prior_loss_weight:g}, "
             f"colour drop {args.colour_drop:g})", round(after[0], 3),
             round(after[1], 3), round(minutes, 1), *after[2].values()]]
    report(args.name, f"Teaching '{args.concept}' with a LoRA "
           f"({curated.kept}/{curated.total} curated images)",
           ["model", f"{args.concept} accuracy", "ShapesEval (old concepts)", "train minutes",
            *(f"{args.concept} {name}" for name in after[2])],
           rows, {"concept": args.concept, "work": str(work), "curated": curated.to_dict(),
                  "concept_images": 4 * args.concept_specs,
                  "old_concept_images": 4 * args.specs_per_task * len(TASKS),
                  "base_row_from": args.base_from})


if __name__ == "__main__":
    main()
