"""GRPO on any family: a sampler of huajia's own whose stochastic steps keep their likelihoods.

Flow-matching families (SD3, FLUX.1, Chroma, Qwen-Image, Z-Image, Sana, Lumina 2, HiDream)
sample through Flow-GRPO's SDE (arXiv 2505.05470), which has the same marginals as the ODE
the pipeline integrates: with σ_t = a·√(σ/(1 − σ)) (``--eta`` is a; σ = 1 is read as the
schedule's second σ, as Flow-GRPO does), a step from σ to σ' = σ + Δσ (Δσ < 0) along the
velocity v = ε − x0 is Gaussian with

    mean = x·(1 + σ_t²·Δσ / (2σ)) + v·(1 + σ_t²·(1 − σ) / (2σ))·Δσ,   std = σ_t·√|Δσ|

(an Euler–Maruyama step of the reverse SDE; a = 0 is the Euler step of the ODE). Only a window
of steps is stochastic (MixGRPO: ``--sde-window``, sliding with ``--sde-window-slide``); the
others are the deterministic Euler steps, so a window with a = 0 is the ODE sampler itself.
The σ schedule is the pipeline's own (its scheduler's ``set_timesteps`` with the family's
spacing and shift); a pipeline that integrates with another solver (Sana's DPM-Solver) gets
Euler on the same shifted σ.

SDXL, Kolors and PixArt-Σ (noise prediction) sample through DDIM with η on the window, as SD
1.x does (``rl/ddim.py``). Either way guidance is the family's (``family.guided``, with
``family.sampler_guidance`` for distilled guidance) and part of the policy; the log-probability
of a step is averaged over the latent's elements (DDPO's and Flow-GRPO's convention).
"""

from __future__ import annotations

import copy

import torch

from huajia.training.rl.ddim import DdimSteps, noisy_positions
from huajia.training.rl.policy import Rollout, recorded_log_prob, walk
from huajia.training.rl.prompts import TrainPrompt


def _column(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.device, like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


class FlowSde:
    """Flow-GRPO's SDE over a σ schedule (``sigmas``: n + 1 values, the last 0)."""

    def __init__(self, sigmas: torch.Tensor):
        self.sigmas = sigmas.to(torch.float64)
        self.sigma_max = float(self.sigmas[1])  # stands in for σ = 1 below (Flow-GRPO's)

    def __len__(self) -> int:
        return len(self.sigmas) - 1

    def timesteps(self, index: torch.Tensor) -> torch.Tensor:
        """The scheduler's timesteps of steps ``index`` (σ · 1000; the family maps them)."""
        return (self.sigmas[index.cpu()] * 1000).to(torch.float32)

    def initial(self, shape: tuple, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(shape, generator=generator)

    def adds_noise(self, index: int) -> bool:
        return bool(self.sigmas[index] > 0 and self.sigmas[index + 1] != self.sigmas[index])

    def mean_std(self, velocity: torch.Tensor, x: torch.Tensor, index: torch.Tensor,
                 eta: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std (per sample, broadcastable) of the step from step ``index``'s σ."""
        index = index.cpu()
        sigma, following = self.sigmas[index], self.sigmas[index + 1]
        dt = following - sigma
        level = eta * (sigma / (1 - torch.where(sigma >= 1, torch.full_like(sigma, self.sigma_max),
                                                sigma))).sqrt()
        sigma, dt, level = (_column(v, x) for v in (sigma, dt, level))
        mean = (x * (1 + level ** 2 / (2 * sigma) * dt)
                + velocity * (1 + level ** 2 * (1 - sigma) / (2 * sigma)) * dt)
        return mean, level * (-dt).sqrt()


class DdimFamilySteps:
    """DDIM on the pipeline's noise schedule (SDXL, Kolors, PixArt-Σ), in ``FlowSde``'s terms."""

    def __init__(self, scheduler_config: dict, steps: int, device):
        # a config written for another solver (Euler, DPM-Solver) that does not say: no clipping
        # of x0 to [-1, 1] (DDIM's default, meant for pixels), as that solver never clips
        config = {**scheduler_config, "clip_sample": scheduler_config.get("clip_sample", False)}
        self.ddim = DdimSteps(config, steps, device)

    def __len__(self) -> int:
        return len(self.ddim)

    def timesteps(self, index: torch.Tensor) -> torch.Tensor:
        return self.ddim.timesteps[index.to(self.ddim.timesteps.device)]

    def initial(self, shape: tuple, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(shape, generator=generator) * self.ddim.scheduler.init_noise_sigma

    def adds_noise(self, index: int) -> bool:
        return self.ddim.adds_noise(index)

    def mean_std(self, pred: torch.Tensor, x: torch.Tensor, index: torch.Tensor,
                 eta: float) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = self.ddim.mean_std(pred, x, self.timesteps(index), eta)
        return mean, std.expand(x.shape[0], *([1] * (x.dim() - 1)))


def flow_sigmas(family, pipe, side: int, steps: int) -> torch.Tensor:
    """The σ the pipeline's sampler visits at ``side`` x ``side`` in ``steps`` steps, and 0."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    size = (side, side)
    if isinstance(pipe.scheduler, FlowMatchEulerDiscreteScheduler):
        scheduler = copy.deepcopy(pipe.scheduler)
        scheduler.set_timesteps(steps, **family.schedule_kwargs(pipe, size, steps))
    else:  # another solver on flow sigmas: Euler on the same shifted σ
        scheduler = FlowMatchEulerDiscreteScheduler(shift=family.training_shift(pipe, size))
        scheduler.set_timesteps(steps)
    return scheduler.sigmas.detach().cpu().to(torch.float32)


def sde_steps(policy, steps: int):
    """The stochastic sampler of ``policy``'s family: Flow-GRPO's SDE or DDIM."""
    if policy.family.flow:
        return FlowSde(flow_sigmas(policy.family, policy.pipe, policy.side, steps))
    return DdimFamilySteps(dict(policy.pipe.scheduler.config), steps, policy.device)


@torch.no_grad()
def sample_sde(policy, steps, prompts: list[TrainPrompt], seed: int, *, eta: float,
               positions: tuple[int, ...]) -> Rollout:
    """One picture per prompt; the steps in ``positions`` are stochastic (and recorded), the
    others deterministic (the ODE's Euler step, or DDIM η = 0)."""
    positions = noisy_positions(steps, positions)
    generator = torch.Generator().manual_seed(seed)
    batch = len(prompts)
    cond = policy.encode([p.text for p in prompts])
    uncond = policy.unconditional(batch) if policy.cfg_scale != 1 else None
    x = steps.initial((batch, *policy.latent_shape()), generator).to(policy.device)

    def denoise(i: int, x: torch.Tensor, stochastic: bool):
        index = torch.full((batch,), i)
        t = steps.timesteps(index)
        u = policy.predict(x, t, uncond) if uncond is not None else None
        mean, std = steps.mean_std(policy.guided(u, policy.predict(x, t, cond)), x, index,
                                   eta if stochastic else 0.0)
        return mean, std, u

    x, recorded = walk(x, len(steps), positions, generator, denoise)
    return Rollout(prompts, cond, x, tuple(positions), *recorded, policy.decode(x))


def sde_step_log_prob(policy, steps, rollout: Rollout, rows: torch.Tensor, cols: torch.Tensor,
                      eta: float, with_reference: bool):
    """Log-probability (with grad) of the recorded draws under the current policy, and the KL
    to the reference at those steps (the unconditional prediction is the rollout's)."""
    index = torch.tensor([rollout.positions[int(c)] for c in cols.tolist()])
    return recorded_log_prob(policy, rollout, rows, cols, steps.timesteps(index),
                             lambda pred, x: steps.mean_std(pred, x, index, eta), with_reference)
