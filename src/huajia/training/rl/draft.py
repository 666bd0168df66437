"""DRaFT (Clark et al. 2023, arXiv 2309.17400): the critic's gradient backpropagated through the
last K sampling steps into the UNet, with DRaFT+'s KL to the frozen model, random truncation and
an early stop against reward hacking.

Each step paints its pictures with the deployed sampler (deterministic DDIM, guidance 5). The
first T − k steps run without gradient; the last k (k drawn uniformly from 1..K each step:
random truncation) keep it, and so do the VAE's decoding and the distilled critic
(training/critic_model.py). The loss is −critic score + ``kl`` × the mean squared distance
between the policy's guided prediction and the frozen starting model's at those steps (DRaFT+).
One optimizer step per rollout.

The verifier judges the same pictures (detached): its credit is the run's ``reward`` and
``pass_rate``, the critic's is ``critic_reward``. When the critic's lead over the verifier on
the same pictures grows by ``EARLY_STOP_GAP`` between the run's first and last ``early_stop``
steps while the verifier's credit does not rise, the critic is being gamed and the run stops
(0: never).
"""

from __future__ import annotations

import numpy as np
import torch

from huajia.engine.images import to_pil
from huajia.training.rl.ddim import DdimSteps
from huajia.training.rl.policy import Policy, sampling_start
from huajia.training.rl.prompts import TrainPrompt

EARLY_STOP_GAP = 0.05  # growth of the critic's lead over the verifier (mean credit)


def _specs(prompts: list[TrainPrompt]) -> list:
    from huajia.world.parser import parse

    return [parse(p.text).spec for p in prompts]


def _guided(policy: Policy, unet, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
            uncond: torch.Tensor) -> torch.Tensor:
    batch = len(x)
    both = unet(torch.cat([x, x]), t.expand(2 * batch), torch.cat([uncond, cond])).sample
    u, c = both.chunk(2)
    return policy.guided(u, c)


def draft_step(policy: Policy, steps: DdimSteps, optimizer, critic, prompts: list[TrainPrompt],
               seed: int, *, backprop_steps: int, kl: float, max_grad_norm: float,
               rng: np.random.Generator) -> tuple[list, dict]:
    """One DRaFT update on ``prompts``; (the pictures, for the verifier; the step's stats)."""
    batch = len(prompts)
    cond, uncond, x = sampling_start(policy, steps, prompts, torch.Generator().manual_seed(seed))
    k = int(rng.integers(1, backprop_steps + 1))  # random truncation
    last = len(steps.timesteps) - k
    with torch.no_grad():
        for t in steps.timesteps[:last]:
            x, _ = steps.mean_std(_guided(policy, policy.unet, x, t, cond, uncond), x, t.expand(batch), 0.0)
    distances = []
    for t in steps.timesteps[last:]:
        pred = _guided(policy, policy.unet, x, t, cond, uncond)
        if kl > 0:
            with torch.no_grad():
                reference = policy.guided(*policy.reference_predict(
                    torch.cat([x, x]), t.expand(2 * batch), torch.cat([uncond, cond])).chunk(2))
            distances.append((pred - reference).pow(2).flatten(1).mean(dim=1))
        x, _ = steps.mean_std(pred, x, t.expand(batch), 0.0)
    vae = policy.pipe.vae
    decoded = vae.decode(x / vae.config.scaling_factor).sample
    scores = critic((decoded / 2 + 0.5).clamp(0, 1), _specs(prompts))
    distance = torch.stack(distances).mean(dim=0) if distances else torch.zeros_like(scores)
    loss = (-scores + kl * distance).mean()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(policy.trainable(), max_grad_norm)
    if torch.isfinite(norm):
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    stats = {"critic_reward": float(scores.detach().mean()), "kl": float(distance.detach().mean()),
             "backprop_steps": k, "grad_norm": float(norm), "skipped_groups": 0,
             "trained_pairs": batch}
    return to_pil(decoded.detach()), stats


def hacking(history: list[dict], window: int) -> str | None:
    """Why to stop, if over the last ``window`` steps the critic's lead over the verifier (both
    on the same pictures, so the prompts' difficulty cancels) grew by ``EARLY_STOP_GAP`` since
    the first ``window`` steps while the verifier's own credit did not rise; else None."""
    if window < 1 or len(history) < 2 * window:
        return None
    critic = np.array([r["critic_reward"] for r in history])
    verifier = np.array([r["reward"] for r in history])
    first, last = slice(0, window), slice(-window, None)
    grew = (critic[last] - verifier[last]).mean() - (critic[first] - verifier[first]).mean()
    if grew > EARLY_STOP_GAP and verifier[last].mean() <= verifier[first].mean():
        return (f"early stop: over {window} steps the critic went {critic[first].mean():.3f} → "
                f"{critic[last].mean():.3f} while the verifier went {verifier[first].mean():.3f} → "
                f"{verifier[last].mean():.3f} (the critic is being gamed)")
    return None
