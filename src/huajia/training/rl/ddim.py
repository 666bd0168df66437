"""A DDIM step with its Gaussian: the mean and standard deviation of x_{t-1} given x_t and the
model's prediction, and the log-probability of a sampled x_{t-1} (what DDPO/GRPO need).

Follows diffusers' ``DDIMScheduler.step`` (same timesteps, prev-timestep rule, variance and
prediction types), but differentiable and with the noise exposed. η = 0 is deterministic DDIM.
"""

from __future__ import annotations

import math

import torch

from huajia.errors import HuajiaError


class DdimSteps:
    def __init__(self, scheduler_config: dict, steps: int, device: torch.device | str = "cpu"):
        from diffusers import DDIMScheduler

        self.scheduler = DDIMScheduler.from_config(scheduler_config)
        self.scheduler.set_timesteps(steps, device=device)
        self.timesteps = self.scheduler.timesteps
        self.alphas = self.scheduler.alphas_cumprod.to(device)
        self.final_alpha = float(self.scheduler.final_alpha_cumprod)
        self.stride = self.scheduler.config.num_train_timesteps // steps
        self.prediction = self.scheduler.config.prediction_type
        self.clip = self.scheduler.config.clip_sample and self.scheduler.config.clip_sample_range

    def __len__(self) -> int:
        return len(self.timesteps)

    def loss_weights(self, t: torch.Tensor) -> torch.Tensor:
        """The base recipe's per-timestep weights of the denoising loss (Min-SNR-5 with a floor
        of 1, in the prediction type's form), for methods that train on that loss."""
        from huajia.training.components import snr_loss_weights

        weights = snr_loss_weights(self.alphas, self.prediction == "v_prediction", 5.0, 1.0)
        return weights[t.to(weights.device)].to(torch.float32)

    def training_draw(self, x0: torch.Tensor, generator: torch.Generator):
        """``x0`` noised to uniformly drawn training timesteps: (noisy, t, target, loss weights)."""
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (x0.shape[0],), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        t, noise = t.to(x0.device), noise.to(x0.device)
        if self.prediction == "epsilon":
            target = noise
        elif self.prediction == "v_prediction":
            target = self.scheduler.get_velocity(x0, noise, t)
        else:
            target = x0
        return self.scheduler.add_noise(x0, noise, t), t, target, self.loss_weights(t)

    def adds_noise(self, index: int) -> bool:
        """Whether step ``index`` can be stochastic: a last step to ᾱ = 1 (``set_alpha_to_one``,
        as SDXL's configs say) has no variance, so no likelihood."""
        t = self.timesteps[index:index + 1].to(self.alphas.device).long()
        a, a_prev = self.alphas[t], self._alpha_prev(t)
        return bool(((1 - a_prev) / (1 - a) * (1 - a / a_prev) > 0).all())

    def _alpha_prev(self, t: torch.Tensor) -> torch.Tensor:
        prev = t - self.stride
        return torch.where(prev >= 0, self.alphas[prev.clamp(min=0)],
                           torch.full_like(self.alphas[t], self.final_alpha))

    def x0_and_eps(self, pred: torch.Tensor, x: torch.Tensor,
                   t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = _per_sample(self.alphas[t], x)
        if self.prediction == "epsilon":
            eps = pred
            x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        elif self.prediction == "v_prediction":
            x0 = a.sqrt() * x - (1 - a).sqrt() * pred
            eps = a.sqrt() * pred + (1 - a).sqrt() * x
        elif self.prediction == "sample":
            x0 = pred
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        else:
            raise ValueError(f"unsupported prediction type {self.prediction}")
        if self.clip:  # x0 alone, as diffusers' step does (ε is not re-derived from it)
            x0 = x0.clamp(-self.clip, self.clip)
        return x0, eps

    def mean_std(self, pred: torch.Tensor, x: torch.Tensor, t: torch.Tensor,
                 eta: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std (per sample, broadcastable) of x_{t-1}; ``t`` holds one timestep per sample."""
        t = t.to(x.device).long().expand(x.shape[0]) if t.dim() == 0 else t.to(x.device).long()
        a, a_prev = _per_sample(self.alphas[t], x), _per_sample(self._alpha_prev(t), x)
        x0, eps = self.x0_and_eps(pred, x, t)
        variance = (1 - a_prev) / (1 - a) * (1 - a / a_prev)
        std = eta * variance.clamp(min=0).sqrt()
        mean = a_prev.sqrt() * x0 + (1 - a_prev - std ** 2).clamp(min=0).sqrt() * eps
        return mean, std


def noisy_positions(steps, positions: tuple[int, ...]) -> tuple[int, ...]:
    """The steps of the stochastic window that can add noise (``steps.adds_noise``)."""
    kept = tuple(i for i in positions if steps.adds_noise(i))
    if positions and not kept:  # no window at all (nft, craft, dpo, raft, draft) is deterministic
        raise HuajiaError("the --sde-window's steps add no noise (DDIM's last step lands on the "
                          "clean picture); widen --sde-window or raise --sample-steps")
    return kept


def log_prob(sample: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Gaussian log-density of ``sample`` per element, averaged over all but the batch dim
    (DDPO's convention: ratios stay O(1) whatever the latent size)."""
    std = std.expand_as(sample)
    density = (-((sample - mean) ** 2) / (2 * std ** 2) - std.log() - 0.5 * math.log(2 * math.pi))
    return density.flatten(1).mean(dim=1)


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))
