"""``huajia train critic``: distil the differentiable critic (training/critic_model.py) from the
verifier, on the model's own pictures and oracle renders.

1. The model paints ``pictures`` pictures of the world's training prompts (the RL prompts,
   plain generation as deployed), and ``holdout`` more of held-out prompts (held-out templates
   and (shape, colour) pairs, another seed).
2. The verifier judges each one; its detections (shape, colour, texture, size and centre of
   every object, and the background) become the per-cell labels of the world feature network.
3. Starting from the shipped world feature network, the heads and trunk are fine-tuned on those
   labels mixed with ``renders`` oracle renders (whose labels are exact), so the critic reads the
   model's own style of picture the way the verifier does.
4. On the held-out pictures the critic's score is compared with the verifier's credit, before
   (the shipped network) and after distillation: the card's agreement.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from huajia.training.critic_recipe import CriticRecipe
from huajia.world.tasks import TASKS

Progress = Callable[[str, int, int], None]  # (stage, done, total)
HEADS = ("cell_shape", "cell_colour", "cell_texture", "cell_size", "background")


def heldout_prompts(n: int, seed: int) -> list:
    """``n`` prompts of the world's held-out templates and pairs (ShapesEval's split), English
    and Chinese alternating, tasks in turn."""
    from huajia.training.rl.prompts import TrainPrompt
    from huajia.world import captions
    from huajia.world.tasks import task_spec

    rng = np.random.default_rng([seed, 43])
    prompts = []
    for i in range(n):
        task = TASKS[i % len(TASKS)]
        frames = captions.templates("en" if i % 2 == 0 else "zh", "eval")
        spec = task_spec(task, rng, "eval")
        prompts.append(TrainPrompt(captions.caption(spec, frames[int(rng.integers(len(frames)))], rng), task))
    return prompts


def _paint(pipe, prompts: list, recipe: CriticRecipe, seed: int, progress: Progress | None,
           stage: str) -> list:
    """The model's pictures of ``prompts``, plain deterministic DDIM with guidance (as deployed)."""
    from huajia.training.rl.ddim import DdimSteps
    from huajia.training.rl.policy import Policy, sample

    policy = Policy(pipe, guidance=recipe.guidance)
    policy.reference = None  # only sampling here: no frozen copy needed
    steps = DdimSteps(pipe.scheduler.config, recipe.sample_steps, policy.device)
    images, chunk = [], 16
    for start in range(0, len(prompts), chunk):
        part = prompts[start:start + chunk]
        images += sample(policy, steps, part, seed=seed * 1_000_003 + start, eta=0.0, positions=()).images
        if progress:
            progress(stage, min(start + chunk, len(prompts)), len(prompts))
    return images


def _verdicts(images: list, prompts: list) -> list:
    from huajia.world.parser import parse
    from huajia.world.verifier import verify

    result = []
    for image, prompt in zip(images, prompts, strict=True):
        parsed = parse(prompt.text)
        result.append((parsed.spec, verify(image, parsed.spec, parsed.lang)))
    return result


def _labels_from(verdict, names: dict) -> dict[str, np.ndarray]:
    """The verifier's detections as the feature network's per-cell labels (its 'main' head is
    not trained here)."""
    from huajia.training.features import CELL_HEADS, scene_labels

    if not verdict.detections:
        cells = {k: np.zeros((4, 4), np.int64) for k in CELL_HEADS}
        return {**cells, "background": np.int64(names["background"].index(verdict.background))}
    scene = SimpleNamespace(objects=list(verdict.detections), background=verdict.background)
    labels = scene_labels(scene, names)
    return {k: labels[k] for k in HEADS}


def _as_tensor(images: list) -> torch.Tensor:
    """PIL pictures → uint8 (N, 3, 64, 64), resized as the network resizes."""
    stacked = torch.stack([torch.from_numpy(np.array(i.convert("RGB"))).permute(2, 0, 1) for i in images])
    small = F.interpolate(stacked.float() / 255, size=(64, 64), mode="bilinear", antialias=True,
                          align_corners=False)
    return (small * 255).round().to(torch.uint8)


def agreement(critic, images: list, judged: list) -> dict:
    """How the critic's score follows the verifier's on judged pictures: Pearson r of the
    scores, mean absolute difference, and agreement on pass/fail (the critic passes a picture
    when every constraint's credit is above ½) and on each constraint."""
    pixels = _as_tensor(images).float() / 255
    with torch.no_grad():
        credits = [c.numpy() for c in critic.credits(pixels, [spec for spec, _ in judged])]
    critic_score = np.array([c.mean() for c in credits])
    verifier_score = np.array([np.mean([k.credit for k in v.constraints]) if v.constraints else 1.0
                               for _, v in judged])
    passes = np.array([bool((c > 0.5).all()) for c in credits]) == np.array([v.passed for _, v in judged])
    each = [bool(c > 0.5) == k.passed for cs, (_, v) in zip(credits, judged, strict=True)
            for c, k in zip(cs, v.constraints, strict=True)]
    r = float(np.corrcoef(critic_score, verifier_score)[0, 1]) if critic_score.std() > 0 else 0.0
    return {"pictures": len(images), "pearson_r": r,
            "mean_abs_diff": float(np.abs(critic_score - verifier_score).mean()),
            "pass_agreement": float(passes.mean()), "constraint_agreement": float(np.mean(each)),
            "critic_mean": float(critic_score.mean()), "verifier_mean": float(verifier_score.mean())}


def _fine_tune(net, images: torch.Tensor, labels: dict, recipe: CriticRecipe,
               progress: Progress | None) -> list[float]:
    torch.manual_seed(recipe.seed)
    optimizer = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(recipe.seed)
    losses, total = [], recipe.epochs * max(1, len(images) // recipe.batch)
    for _ in range(recipe.epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, max(1, len(images) - recipe.batch + 1), recipe.batch):
            index = order[start:start + recipe.batch]
            net.train()
            out = net(images[index])
            loss = sum(F.cross_entropy(out[k], labels[k][index]) for k in HEADS)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if progress:
                progress("distil", len(losses), total)
    return losses


def train_critic(recipe: CriticRecipe, out: str | Path, *, pipe=None,
                 progress: Progress | None = None) -> dict:
    """Distil the critic into ``out`` (network, critic.json, card); its record."""
    from huajia.scorers.world_features import load_feature_net
    from huajia.training.critic_model import SoftCritic, picture_side, save_critic
    from huajia.training.features import label_names, render_set
    from huajia.training.rl.prompts import PromptSource

    started, cpu = time.perf_counter(), time.process_time()
    side = picture_side(pipe)
    source = PromptSource(recipe.seed)
    train_prompts = [p for s in range(0, recipe.pictures, 8) for p in source.prompts(10_000 + s, 8)]
    train_prompts = train_prompts[:recipe.pictures]
    held = heldout_prompts(recipe.holdout, recipe.seed + 1)
    own = _paint(pipe, train_prompts, recipe, recipe.seed, progress, "paint (training prompts)")
    held_images = _paint(pipe, held, recipe, recipe.seed + 1, progress, "paint (held-out prompts)")
    judged, held_judged = _verdicts(own, train_prompts), _verdicts(held_images, held)
    names = label_names()
    own_labels = [_labels_from(v, names) for _, v in judged]
    images, labels = _as_tensor(own), {k: torch.as_tensor(np.stack([lab[k] for lab in own_labels]))
                                       for k in HEADS}
    if recipe.renders:
        from huajia.world.render import MIN_SIDE

        rendered, render_labels = render_set(recipe.renders, recipe.seed + 7, max(side, MIN_SIDE), names)
        images = torch.cat([images, rendered])
        labels = {k: torch.cat([labels[k], render_labels[k]]) for k in HEADS}
    net = load_feature_net()
    before = agreement(SoftCritic(net, side).eval(), held_images, held_judged)
    losses = _fine_tune(net, images, labels, recipe, progress)
    critic = SoftCritic(net.eval(), side).eval()
    after = agreement(critic, held_images, held_judged)
    record = {"recipe": asdict(recipe), "agreement": after, "agreement_shipped_net": before,
              "train_agreement": agreement(critic, own, judged),
              "distillation_pictures": len(images), "loss_first": losses[0], "loss_last": losses[-1],
              "parameters": sum(p.numel() for p in net.parameters()),
              "wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}
    folder = save_critic(critic, out, record)
    write_critic_card(folder, record, side)
    return record


def write_critic_card(folder: Path, record: dict, side: int) -> Path:
    a, b = record["agreement"], record["agreement_shipped_net"]
    r = record["recipe"]
    rows = "\n".join(f"| {name} | {b[k]:.3f} | {a[k]:.3f} |" for name, k in (
        ("Pearson r of the scores", "pearson_r"), ("mean absolute difference", "mean_abs_diff"),
        ("pass/fail agreement", "pass_agreement"), ("per-constraint agreement", "constraint_agreement"),
        ("mean score (verifier: {:.3f})".format(a["verifier_mean"]), "critic_mean")))
    text = f"""# huajia differentiable critic ({side} px pictures of the shapes world)

DRaFT's critic (`huajia train rl --method draft --critic-model DIR`): the world feature network's
per-cell heads turned into soft counts, colours, sides and background (training/critic_model.py),
{record['parameters']:,} parameters, distilled from the verifier's detections on
{r['pictures']} of `{r['model']}`'s own pictures of training prompts plus {r['renders']} oracle
renders ({r['epochs']} epochs, lr {r['lr']:g}, seed {r['seed']}; {record['cpu_s'] / 60:.1f} CPU minutes).

Agreement with the verifier on {a['pictures']} of the model's pictures of **held-out** prompts
(held-out templates and pairs, English and Chinese):

| | shipped world network | distilled critic |
|---|---|---|
{rows}

Reproduce: `huajia train critic --out DIR --model {r['model']} --pictures {r['pictures']} \
--renders {r['renders']} --holdout {r['holdout']} --epochs {r['epochs']} --seed {r['seed']}`
"""
    path = folder / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
