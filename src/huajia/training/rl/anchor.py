"""A supervised anchor for RL on the shapes world (InstructGPT's "PPO-ptx" idea).

Policy-gradient runs drift toward the (shape, colour) pairs they are rewarded on and forget the
ones the base model generalised to (docs/rl.md). The anchor adds, at every optimizer step, the
base recipe's own loss on oracle renders of fresh training scenes: v-prediction (or the
pipeline's prediction type) with min-SNR weights and the base recipe's caption dropout, so the
unconditional branch that guidance relies on is trained too. Only training scenes and templates
are drawn; ShapesEval's held-out pairs stay unseen.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from huajia.engine.images import to_tensor
from huajia.training.base import random_caption
from huajia.training.components import snr_loss_weights
from huajia.training.rl.ddim import DdimSteps
from huajia.training.rl.policy import Policy
from huajia.world import sampler
from huajia.world.render import MIN_SIDE, render

CAPTION_DROPOUT = 0.1  # the base recipe's: keeps the unconditional branch with the conditional one
COLOUR_DROP = 0.3


class WorldAnchor:
    """``loss(step, k)``: the anchor loss of optimizer step ``k`` of RL step ``step`` (a pure
    function of the seed and both indices, so resumed runs see the same scenes and noise)."""

    def __init__(self, policy: Policy, steps: DdimSteps, *, weight: float, batch: int, seed: int):
        self.policy, self.steps, self.weight, self.batch, self.seed = policy, steps, weight, batch, seed
        config = steps.scheduler.config
        self.prediction = config.prediction_type
        alphas = steps.scheduler.alphas_cumprod.to(policy.device)
        self.loss_weights = snr_loss_weights(alphas, self.prediction == "v_prediction", 5.0, 1.0)
        self.image_side = policy.pipe.vae.config.sample_size

    def _render(self, scene):
        side = self.image_side
        image = render(scene, max(side, MIN_SIDE))  # the renderer draws at 64 px or more
        return image if image.size == (side, side) else image.resize((side, side), Image.LANCZOS)

    @torch.no_grad()
    def _batch(self, rng: np.random.Generator, generator: torch.Generator):
        scenes = [sampler.sample_scene(rng, "train", seed=int(rng.integers(2**31)))
                  for _ in range(self.batch)]
        vae = self.policy.pipe.vae
        pixels = to_tensor([self._render(s) for s in scenes]).to(self.policy.device)
        latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
        texts = [random_caption(s, rng, CAPTION_DROPOUT, COLOUR_DROP) for s in scenes]
        cond = self.policy.encode(texts)
        scheduler = self.steps.scheduler
        t = torch.randint(0, scheduler.config.num_train_timesteps, (self.batch,), generator=generator)
        noise = torch.randn(latents.shape, generator=generator)
        t, noise = t.to(latents.device), noise.to(latents.device)
        noisy = scheduler.add_noise(latents, noise, t)
        if self.prediction == "v_prediction":
            target = scheduler.get_velocity(latents, noise, t)
        else:
            target = noise if self.prediction == "epsilon" else latents
        return noisy, t, cond, target

    def loss(self, step: int, k: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, 43, step, k])
        generator = torch.Generator().manual_seed(self.seed * 9_000_011 + step * 101 + k)
        noisy, t, cond, target = self._batch(rng, generator)
        per_sample = F.mse_loss(self.policy.predict(noisy, t, cond), target,
                                reduction="none").flatten(1).mean(dim=1)
        return self.weight * (per_sample * self.loss_weights[t]).mean()
