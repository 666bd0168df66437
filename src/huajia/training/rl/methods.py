"""One policy update per rollout for each method.

- ``grpo``: DDPO/GRPO policy gradient. Advantage = reward standardised within the prompt's
  group (groups whose rewards are all equal teach nothing and are skipped); PPO's clipped ratio
  over a random subset of the stochastic steps; KL to the frozen starting UNet.
- ``dpo``: Diffusion-DPO on ranked pairs of each group (k-th best against k-th worst; pictures
  sampled with deterministic DDIM, as deployed), against the frozen reference.
- ``raft``: reward-ranked fine-tuning: the plain diffusion loss on the pictures the critic was
  satisfied with, from groups where it was not satisfied with all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from huajia.training.rl.ddim import DdimSteps
from huajia.training.rl.policy import Policy, Rollout

Anchor = Callable[[int], torch.Tensor]  # optimizer step k of this rollout → an extra loss


@dataclass(frozen=True)
class UpdateSettings:
    eta: float
    kl: float
    clip_range: float
    adv_clip: float
    train_timesteps: int
    updates: int
    dpo_beta: float
    max_grad_norm: float = 1.0
    micro_batch: int = 32  # samples per forward pass (a GPU takes hundreds)


def group_advantages(rewards: np.ndarray, group_size: int) -> tuple[np.ndarray, int]:
    """Rewards standardised within each group; zero for groups whose rewards are all equal.
    Returns the advantages and how many groups were skipped."""
    groups = rewards.reshape(-1, group_size)
    std = groups.std(axis=1, keepdims=True)
    flat = std[:, 0] < 1e-6
    adv = np.where(flat[:, None], 0.0, (groups - groups.mean(axis=1, keepdims=True)) / (std + 1e-4))
    return adv.reshape(-1), int(flat.sum())


def minibatches(items: list, parts: int, rng: np.random.Generator) -> list[list]:
    order = rng.permutation(len(items))
    return [[items[i] for i in chunk] for chunk in np.array_split(order, max(1, min(parts, len(items))))
            if len(chunk)]


def optimizer_step(policy: Policy, optimizer, settings: UpdateSettings, anchor: Anchor | None = None,
                    k: int = 0, record: list | None = None) -> float:
    """Add the anchor's loss (if any), clip and step; a non-finite gradient (a diverged sample)
    is dropped, never applied."""
    if anchor is not None:
        loss = anchor(k)
        loss.backward()
        if record is not None:
            record.append(float(loss.detach()))
    norm = torch.nn.utils.clip_grad_norm_(policy.trainable(), settings.max_grad_norm)
    if torch.isfinite(norm):
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


def grpo_update(policy: Policy, steps: DdimSteps, optimizer, rollout: Rollout, rewards: np.ndarray,
                group_size: int, settings: UpdateSettings, rng: np.random.Generator,
                anchor: Anchor | None = None) -> dict:
    adv, skipped = group_advantages(rewards, group_size)
    adv = np.clip(adv, -settings.adv_clip, settings.adv_clip)
    n_steps = len(rollout.positions)
    pairs = [(b, int(c)) for b in np.flatnonzero(adv)
             for c in rng.choice(n_steps, size=min(settings.train_timesteps, n_steps), replace=False)]
    stats = {"skipped_groups": skipped, "kl": 0.0, "clip_frac": 0.0, "trained_pairs": len(pairs)}
    if not pairs:
        return stats
    advantages = torch.as_tensor(adv, dtype=torch.float32, device=policy.device)
    kls, clipped, anchored = [], [], []
    for k, batch in enumerate(minibatches(pairs, settings.updates, rng)):
        for start in range(0, len(batch), settings.micro_batch):
            part = batch[start:start + settings.micro_batch]
            rows = torch.tensor([b for b, _ in part], device=policy.device)
            cols = torch.tensor([c for _, c in part], device=policy.device)
            logp, kl = policy.step_log_prob(steps, rollout, rows, cols, settings.eta, with_reference=True)
            # far outside the clip range the surrogate is flat anyway; the bound keeps exp finite
            ratio = torch.exp((logp - rollout.log_probs[rows, cols]).clamp(-20.0, 20.0))
            a = advantages[rows]
            surrogate = torch.maximum(-a * ratio, -a * ratio.clamp(1 - settings.clip_range,
                                                                   1 + settings.clip_range))
            loss = (surrogate + settings.kl * kl).sum() / len(batch)
            loss.backward()
            kls += kl.detach().tolist()
            clipped += ((ratio - 1).abs() > settings.clip_range).float().tolist()
        optimizer_step(policy, optimizer, settings, anchor, k, anchored)
    stats.update(kl=float(np.mean(kls)), clip_frac=float(np.mean(clipped)))
    if anchored:
        stats["anchor_loss"] = float(np.mean(anchored))
    return stats


def _diffusion_target(steps: DdimSteps, x0: torch.Tensor, noise: torch.Tensor,
                      t: torch.Tensor) -> torch.Tensor:
    if steps.prediction == "epsilon":
        return noise
    if steps.prediction == "v_prediction":
        return steps.scheduler.get_velocity(x0, noise, t)
    return x0


def shared_noise(steps: DdimSteps, x0: torch.Tensor, copies: int, generator: torch.Generator):
    """``x0`` (copies stacked along the batch) noised to random training timesteps, the same
    timestep and noise for the k-th row of every copy (Diffusion-DPO compares winner and loser
    under identical noise); returns the noisy latents, timesteps and regression targets. A
    family's objective (``rl/family_policy.FamilySteps``: flow or DDPM) draws its own."""
    if not isinstance(steps, DdimSteps):
        return steps.shared_noise(x0, copies, generator)
    rows = x0.shape[0] // copies
    t = torch.randint(0, steps.scheduler.config.num_train_timesteps, (rows,), generator=generator)
    noise = torch.randn((rows, *x0.shape[1:]), generator=generator)
    t, noise = t.repeat(copies).to(x0.device), noise.repeat(copies, 1, 1, 1).to(x0.device)
    return steps.scheduler.add_noise(x0, noise, t), t, _diffusion_target(steps, x0, noise, t)


def denoising_errors(predict, x, t, cond, target) -> torch.Tensor:
    return F.mse_loss(predict(x, t, cond), target, reduction="none").flatten(1).mean(dim=1)


def ranked_pairs(groups: np.ndarray) -> list[tuple[int, int]]:
    """(winner, loser) rows: each group's k-th best against its k-th worst, for the top half,
    wherever the critic told them apart."""
    pairs = []
    for g, r in enumerate(groups):
        order = np.argsort(-r, kind="stable")
        for k in range(len(r) // 2):
            win, lose = int(order[k]), int(order[-1 - k])
            if r[win] - r[lose] > 1e-6:
                pairs.append((g * len(r) + win, g * len(r) + lose))
    return pairs


def dpo_update(policy: Policy, steps: DdimSteps, optimizer, rollout: Rollout, rewards: np.ndarray,
               group_size: int, settings: UpdateSettings, rng: np.random.Generator,
               generator: torch.Generator) -> dict:
    groups = rewards.reshape(-1, group_size)
    pairs = ranked_pairs(groups)
    stats = {"skipped_groups": int(sum(r.max() - r.min() <= 1e-6 for r in groups)), "drift": 0.0,
             "dpo_acc": 0.0,
             "trained_pairs": len(pairs)}
    if not pairs:
        return stats
    items = [pair for pair in pairs for _ in range(settings.train_timesteps)]
    implicit, drift = [], []
    half = max(1, settings.micro_batch // 2)  # winner and loser share a pass
    for batch in minibatches(items, settings.updates, rng):
        for start in range(0, len(batch), half):
            part = batch[start:start + half]
            index = torch.tensor([w for w, _ in part] + [lo for _, lo in part], device=policy.device)
            x0, cond = rollout.latents[index], rollout.cond[index]
            noisy, t, target = shared_noise(steps, x0, 2, generator)
            model_w, model_l = denoising_errors(policy.predict, noisy, t, cond, target).chunk(2)
            with torch.no_grad():
                ref_w, ref_l = denoising_errors(policy.reference_predict, noisy, t, cond, target).chunk(2)
            inside = -0.5 * settings.dpo_beta * ((model_w - ref_w) - (model_l - ref_l))
            (-F.logsigmoid(inside).sum() / len(batch)).backward()
            implicit += (inside.detach() > 0).float().tolist()
            drift += ((model_w - ref_w).abs() + (model_l - ref_l).abs()).detach().mul(0.5).tolist()
        optimizer_step(policy, optimizer, settings)
    stats.update(dpo_acc=float(np.mean(implicit)), drift=float(np.mean(drift)))
    return stats


def raft_update(policy: Policy, steps: DdimSteps, optimizer, rollout: Rollout, rewards: np.ndarray,
                satisfied: np.ndarray, group_size: int, settings: UpdateSettings,
                rng: np.random.Generator, generator: torch.Generator) -> dict:
    groups = satisfied.reshape(-1, group_size)
    # the satisfied pictures of groups where the critic was not always satisfied: a group that
    # always passes (or never) says nothing about what the prompt needs
    mixed = [g for g, ok in enumerate(groups) if 0 < ok.sum() < group_size]
    winners = [g * group_size + int(k) for g in mixed for k in np.flatnonzero(groups[g])]
    stats = {"skipped_groups": len(groups) - len(mixed), "drift": 0.0, "trained_pairs": len(winners)}
    if not winners:
        return stats
    items = [w for w in winners for _ in range(settings.train_timesteps)]
    drift = []
    for batch in minibatches(items, settings.updates, rng):
        for start in range(0, len(batch), settings.micro_batch):
            index = torch.tensor(batch[start:start + settings.micro_batch], device=policy.device)
            x0, cond = rollout.latents[index], rollout.cond[index]
            noisy, t, target = shared_noise(steps, x0, 1, generator)
            errors = denoising_errors(policy.predict, noisy, t, cond, target)
            (errors.sum() / len(batch)).backward()
            with torch.no_grad():
                reference = denoising_errors(policy.reference_predict, noisy, t, cond, target)
                drift += (errors - reference).tolist()
        optimizer_step(policy, optimizer, settings)
    stats["drift"] = float(np.mean(drift))
    return stats
