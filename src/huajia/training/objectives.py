"""What a LoRA trainer asks the denoiser to predict, per family kind.

``NoiseObjective`` (SD 1.x/2.x, SDXL, Kolors, PixArt-Σ): a DDPM timestep drawn uniformly, the
scheduler's ``add_noise``, the target ε (or v), Min-SNR-γ weights. ``FlowObjective`` (SD3,
FLUX.1, Chroma, Qwen-Image, Z-Image, Sana, Lumina 2): σ drawn by diffusers' ``training_utils``
density (logit-normal by default) and shifted by the family's shift at the training size,
x_t = (1 − σ)·x0 + σ·ε, the target ε − x0, diffusers' SD3 loss weighting.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from huajia.training.components import snr_loss_weights

DENSITIES = ("logit_normal", "uniform", "mode", "cosmap")  # diffusers.training_utils
WEIGHTINGS = ("none", "sigma_sqrt", "cosmap")


@dataclass
class Noised:
    """One batch, noised: the denoiser's input, its time (the scheduler's timestep: flow
    σ · 1000), what it should predict and each picture's loss weight."""

    latents: torch.Tensor  # (B, C, h, w)
    timesteps: torch.Tensor  # (B,)
    target: torch.Tensor  # (B, C, h, w)
    weights: torch.Tensor  # (B,)


class NoiseObjective:
    """ε or v prediction on the pipeline's noise schedule (DDPM's, from its config)."""

    def __init__(self, scheduler_config: dict, min_snr_gamma: float):
        from diffusers import DDPMScheduler

        self.scheduler = DDPMScheduler.from_config(scheduler_config)
        self.v = self.scheduler.config.prediction_type == "v_prediction"
        steps = self.scheduler.config.num_train_timesteps
        self.weights = (snr_loss_weights(self.scheduler.alphas_cumprod, self.v, min_snr_gamma)
                        if min_snr_gamma > 0 else torch.ones(steps))

    def noised(self, z: torch.Tensor, noise: torch.Tensor, generator: torch.Generator) -> Noised:
        steps = self.scheduler.config.num_train_timesteps
        t = torch.randint(0, steps, (len(z),), generator=generator).to(z.device)
        return self.at(z, noise, t)

    def at(self, z: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> Noised:
        """``z`` noised with ``noise`` to the timesteps ``t`` (one a picture)."""
        target = self.scheduler.get_velocity(z, noise, t) if self.v else noise
        return Noised(self.scheduler.add_noise(z, noise, t), t, target,
                      self.weights.to(z.device)[t])


class FlowObjective:
    """Rectified flow: σ from ``density``, shifted by ``shift``; target ε − x0."""

    def __init__(self, shift: float, density: str = "logit_normal", weighting: str = "none"):
        self.shift, self.density, self.weighting = shift, density, weighting

    def sigmas(self, n: int, generator: torch.Generator) -> torch.Tensor:
        from diffusers.training_utils import compute_density_for_timestep_sampling

        u = compute_density_for_timestep_sampling(self.density, n, logit_mean=0.0, logit_std=1.0,
                                                  mode_scale=1.29, generator=generator)
        u = u.clamp(1e-4, 1 - 1e-4)
        return self.shift * u / (1 + (self.shift - 1) * u)

    def noised(self, z: torch.Tensor, noise: torch.Tensor, generator: torch.Generator) -> Noised:
        return self.at(z, noise, self.sigmas(len(z), generator).to(z.device, z.dtype) * 1000)

    def at(self, z: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> Noised:
        """``z`` noised with ``noise`` to the timesteps σ · 1000 (one a picture)."""
        from diffusers.training_utils import compute_loss_weighting_for_sd3

        sigma = timesteps / 1000
        s = sigma.view(-1, *([1] * (z.ndim - 1)))
        weights = compute_loss_weighting_for_sd3(self.weighting, sigma).to(z.dtype)
        return Noised((1 - s) * z + s * noise, sigma * 1000, noise - z, weights)


def objective_for(family, pipe, side: int | tuple[int, int], min_snr_gamma: float, density: str,
                  weighting: str):
    """The objective of ``pipe``'s family at ``side`` x ``side`` (or a (W, H) size)."""
    if family.flow:
        size = (side, side) if isinstance(side, int) else side
        return FlowObjective(family.training_shift(pipe, size), density, weighting)
    return NoiseObjective(dict(pipe.scheduler.config), min_snr_gamma)
