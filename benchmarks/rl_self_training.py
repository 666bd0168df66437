"""Why RAFT collapsed (docs/rl.md, issue 45): the shipped model's own CFG-5 pictures against oracle
renders of the same captions (latent spread, the conditional branch's denoising error), then 40
RAFT-style AdamW steps on those pictures at a learning rate, with each caption-dropout share,
and the guided sampler's pictures again (latent spread, verifier reward, cond - uncond gap).

Run: OMP_NUM_THREADS=1 python benchmarks/rl_self_training.py --lr 3e-5 --dropouts 0,0.1,0.5 [--guided]
     (writes benchmarks/results/rl_self_training_lr{LR}.json and one picture per setting)
"""

from __future__ import annotations

import argparse
import copy
import json

import numpy as np
import torch
from _common import RESULTS

from huajia.engine.images import to_tensor
from huajia.engine.loading import load_pipeline, resolve_model
from huajia.thinking.critics import make_critic
from huajia.training.base import random_caption
from huajia.training.rl.ddim import DdimSteps
from huajia.training.rl.methods import shared_noise
from huajia.training.rl.policy import Policy, sample
from huajia.training.rl.prompts import TrainPrompt
from huajia.training.rl.rewards import CriticReward
from huajia.world import sampler
from huajia.world.render import render

PICTURES, STEPS, BATCH = 8, 40, 4


def _gap(policy: Policy, steps: DdimSteps, latents, cond, empty) -> float:
    """Mean squared difference of the conditional and unconditional predictions (what CFG scales)."""
    with torch.no_grad():
        noisy, t, _ = shared_noise(steps, latents, 1, torch.Generator().manual_seed(11))
        unconditional = policy.predict(noisy, t, empty.expand_as(cond))
        return float((policy.predict(noisy, t, cond) - unconditional).pow(2).mean())


def _self_train(policy: Policy, steps: DdimSteps, own, empty, lr: float, dropout: float,
                guided: bool) -> None:
    """RAFT's loss on the model's own pictures; ``guided``: on the guided prediction instead (the
    unconditional branch held fixed), so a picture the guided sampler drew is its fixed point."""
    optimizer = torch.optim.AdamW(policy.trainable(), lr=lr, weight_decay=0.0)
    generator, rng = torch.Generator().manual_seed(7), np.random.default_rng(7)
    for _ in range(STEPS):
        index = torch.tensor(rng.choice(PICTURES, size=BATCH, replace=False))
        dropped = torch.as_tensor(rng.random(BATCH) < dropout)
        cond = torch.where(dropped[:, None, None], empty, own.cond[index])
        noisy, t, target = shared_noise(steps, own.latents[index], 1, generator)
        prediction = policy.predict(noisy, t, cond)
        if guided:
            with torch.no_grad():
                unconditional = policy.predict(noisy, t, empty.expand_as(cond))
            prediction = policy.guided(unconditional, prediction)
        (prediction - target).pow(2).mean().backward()
        torch.nn.utils.clip_grad_norm_(policy.trainable(), 1.0)
        optimizer.step()
        optimizer.zero_grad()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--dropouts", default="0,0.1,0.5")
    parser.add_argument("--guided", action="store_true", help="the loss on the guided prediction")
    args = parser.parse_args()
    torch.manual_seed(0)
    pipe = load_pipeline(resolve_model("embedded"), torch.device("cpu"), torch.float32).to(torch.float32)
    policy, steps = Policy(pipe, guidance=5.0), DdimSteps(pipe.scheduler.config, 20)
    rng = np.random.default_rng(0)
    scenes = [sampler.sample_scene(rng, "train", seed=int(rng.integers(2**31))) for _ in range(PICTURES)]
    prompts = [TrainPrompt(random_caption(s, rng, 0.0, 0.0), "diag") for s in scenes]
    vae, side = pipe.vae, pipe.vae.config.sample_size
    with torch.no_grad():
        pixels = to_tensor([render(s, max(side, 64)).resize((side, side)) for s in scenes])
        oracle = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
    own = sample(policy, steps, prompts, seed=1, eta=0.0, positions=())
    reward, empty = CriticReward(make_critic("shapes")), policy.encode([""])[0]
    result = {"lr": args.lr, "guided_loss": args.guided, "pictures": PICTURES, "adam_steps": STEPS,
              "latent_std_oracle": float(oracle.std()), "latent_std_own_cfg5": float(own.latents.std()),
              "reward_before": float(reward(own.images, prompts)[0].mean()),
              "cond_minus_uncond_sq_before": _gap(policy, steps, own.latents, own.cond, empty)}
    start = copy.deepcopy(policy.unet.state_dict())
    for dropout in (float(x) for x in args.dropouts.split(",")):
        policy.unet.load_state_dict(start)
        _self_train(policy, steps, own, empty, args.lr, dropout, args.guided)
        again = sample(policy, steps, prompts, seed=1, eta=0.0, positions=())
        result[f"caption_dropout_{dropout}"] = {
            "latent_std": float(again.latents.std()),
            "reward": float(reward(again.images, prompts)[0].mean()),
            "cond_minus_uncond_sq": _gap(policy, steps, own.latents, own.cond, empty)}
        tag = "_guided" if args.guided else ""
        again.images[0].save(RESULTS / f"rl_self_training_lr{args.lr:g}{tag}_drop{dropout:g}.png")
    own.images[0].save(RESULTS / "rl_self_training_before.png")
    print(json.dumps(result, indent=1))
    name = f"rl_self_training_lr{args.lr:g}{'_guided' if args.guided else ''}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
