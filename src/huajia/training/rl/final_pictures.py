"""Methods that learn from final pictures and their rewards alone, inside the ordinary denoising
loss: no likelihoods, no stochastic sampler, any sampler (the deployed deterministic DDIM here).

- ``nft``: DiffusionNFT (Zheng et al. 2025, arXiv 2509.16117). Each picture is noised afresh
  and the model's prediction v_θ is mixed with the rollout policy's v_old into an implicit
  positive policy (1 − β)·v_old + β·v_θ and an implicit negative one (1 + β)·v_old − β·v_θ.
  The positive one regresses the picture's target with weight r, the negative one with
  weight 1 − r, where r = ½ + ½·clip(A, −1, 1) is the picture's "optimality" from its
  group-standardised advantage A. At v_θ = v_old the gradient is 2β(2r − 1)(v_old − target):
  the pull toward the model's own pictures cancels across a group (unlike RAFT's) and only the
  contrast between better and worse pictures remains; away from v_old a 2β²‖v_θ − v_old‖ pull
  keeps each update close (a built-in trust region).
- ``craft``: reward-filtered supervised fine-tuning done as the base recipe trains (RAFT, CRAFT
  arXiv 2603.18991): the top ``winners`` pictures of each prompt's group (those above the
  group's mean reward), the base recipe's Min-SNR loss weights and its caption dropout (a tenth
  of the pictures learn under the empty prompt), so the unconditional branch that guidance
  subtracts moves with the conditional one.

Both add ``kl`` × the squared distance between the prediction and the frozen starting model's
(the proximal term of flow models' KL), and the shapes anchor when asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from huajia.training.rl.methods import (
    Anchor,
    UpdateSettings,
    group_advantages,
    minibatches,
    optimizer_step,
)
from huajia.training.rl.policy import Policy, Rollout


@dataclass(frozen=True)
class PictureSettings:
    """What nft and craft add to ``UpdateSettings``."""

    nft_beta: float = 1.0
    winners: int = 2
    caption_dropout: float = 0.1


def optimality(rewards: np.ndarray, group_size: int) -> tuple[np.ndarray, int]:
    """DiffusionNFT's r per picture: ½ + ½·clip(group-standardised advantage, −1, 1); groups
    whose rewards are all equal get exactly ½ (they teach nothing and are skipped)."""
    adv, skipped = group_advantages(rewards, group_size)
    return 0.5 + 0.5 * np.clip(adv, -1.0, 1.0), skipped


def top_winners(rewards: np.ndarray, group_size: int, k: int) -> list[int]:
    """Rows of each group's best ``k`` pictures that scored above their group's mean."""
    rows = []
    for g, group in enumerate(rewards.reshape(-1, group_size)):
        order = np.argsort(-group, kind="stable")[:k]
        rows += [g * group_size + int(i) for i in order if group[i] > group.mean() + 1e-6]
    return rows


def _distance(policy: Policy, pred: torch.Tensor, noisy, t, cond) -> torch.Tensor:
    """‖v_θ − v_ref‖² per sample, against the frozen starting model (with grad through v_θ)."""
    reference = policy.reference_predict(noisy, t, cond)
    return (pred - reference).pow(2).flatten(1).mean(dim=1)


@torch.no_grad()
def _draws(policy: Policy, steps, rollout: Rollout, rows: list[int], settings: UpdateSettings,
           generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Each row's noised latents, timesteps and targets (``train_timesteps`` draws a row) and
    the rollout policy's prediction there (v_old: fixed before the first optimizer step)."""
    index = torch.tensor([r for r in rows for _ in range(settings.train_timesteps)], device=policy.device)
    noisy, t, target, weights = steps.training_draw(rollout.latents[index], generator)
    old = torch.cat([policy.predict(noisy[s:s + settings.micro_batch], t[s:s + settings.micro_batch],
                                    rollout.cond[index[s:s + settings.micro_batch]])
                     for s in range(0, len(index), settings.micro_batch)])
    return {"index": index, "noisy": noisy, "t": t, "target": target, "weights": weights, "old": old}


def nft_update(policy: Policy, steps, optimizer, rollout: Rollout, rewards: np.ndarray,
               group_size: int, settings: UpdateSettings, picture: PictureSettings,
               rng: np.random.Generator, generator: torch.Generator, anchor: Anchor | None = None) -> dict:
    r, skipped = optimality(rewards, group_size)
    rows = [int(i) for i in np.flatnonzero(r != 0.5)]
    # kl: ‖v_θ − v_ref‖² to the starting model; drift: ‖v_θ − v_old‖² to the rollout's policy
    stats = {"skipped_groups": skipped, "kl": 0.0, "drift": 0.0, "trained_pairs": len(rows)}
    if not rows:
        return stats
    draws = _draws(policy, steps, rollout, rows, settings, generator)
    optimal = torch.as_tensor(r, dtype=torch.float32, device=policy.device)[draws["index"]]
    beta, kls, drift, anchored = picture.nft_beta, [], [], []
    for k, batch in enumerate(minibatches(list(range(len(draws["index"]))), settings.updates, rng)):
        for start in range(0, len(batch), settings.micro_batch):
            part = torch.tensor(batch[start:start + settings.micro_batch], device=policy.device)
            noisy, t, target, weights, old = (draws[key][part] for key in
                                              ("noisy", "t", "target", "weights", "old"))
            cond = rollout.cond[draws["index"][part]]
            pred = policy.predict(noisy, t, cond)
            positive = ((1 - beta) * old + beta * pred - target).pow(2).flatten(1).mean(dim=1)
            negative = ((1 + beta) * old - beta * pred - target).pow(2).flatten(1).mean(dim=1)
            w = optimal[part]
            distance = _distance(policy, pred, noisy, t, cond)
            contrast = w * positive + (1 - w) * negative
            loss = (weights * contrast + settings.kl * distance).sum()
            (loss / len(batch)).backward()
            kls += distance.detach().tolist()
            drift += (pred - old).detach().pow(2).flatten(1).mean(dim=1).tolist()
        optimizer_step(policy, optimizer, settings, anchor, k, anchored)
    stats.update(kl=float(np.mean(kls)), drift=float(np.mean(drift)))
    if anchored:
        stats["anchor_loss"] = float(np.mean(anchored))
    return stats


def craft_update(policy: Policy, steps, optimizer, rollout: Rollout, rewards: np.ndarray,
                 group_size: int, settings: UpdateSettings, picture: PictureSettings,
                 rng: np.random.Generator, generator: torch.Generator, anchor: Anchor | None = None) -> dict:
    winners = top_winners(rewards, group_size, picture.winners)
    groups = rewards.reshape(-1, group_size)
    # kl: ‖v_θ − v_ref‖² to the starting model; drift: the winners' denoising error
    stats = {"skipped_groups": int(sum(g.max() - g.min() <= 1e-6 for g in groups)), "kl": 0.0,
             "drift": 0.0, "trained_pairs": len(winners)}
    if not winners:
        return stats
    items = [w for w in winners for _ in range(settings.train_timesteps)]
    dropped = torch.as_tensor(rng.random(len(items)) < picture.caption_dropout, device=policy.device)
    kls, drift, anchored = [], [], []
    for k, batch in enumerate(minibatches(list(range(len(items))), settings.updates, rng)):
        for start in range(0, len(batch), settings.micro_batch):
            part = torch.tensor(batch[start:start + settings.micro_batch], device=policy.device)
            index = torch.tensor([items[int(i)] for i in part], device=policy.device)
            cond = policy.drop_captions(rollout.cond[index], dropped[part])
            noisy, t, target, weights = steps.training_draw(rollout.latents[index], generator)
            pred = policy.predict(noisy, t, cond)
            error = (pred - target).pow(2).flatten(1).mean(dim=1)
            distance = _distance(policy, pred, noisy, t, cond)
            ((weights * error + settings.kl * distance).sum() / len(batch)).backward()
            kls += distance.detach().tolist()
            drift += error.detach().tolist()
        optimizer_step(policy, optimizer, settings, anchor, k, anchored)
    stats.update(kl=float(np.mean(kls)), drift=float(np.mean(drift)))
    if anchored:
        stats["anchor_loss"] = float(np.mean(anchored))
    return stats
