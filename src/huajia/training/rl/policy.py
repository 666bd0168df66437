"""The policy: an SD-family pipeline whose UNet learns (in full or through a LoRA), a frozen
reference for the KL term, and rollouts that keep what the policy gradient needs.

The text encoder and VAE stay frozen. Classifier-free guidance is part of the policy (the
deployed sampler uses it): a step's mean comes from ``uncond + w * (cond - uncond)``. Training
recomputes only the conditional branch and reuses the unconditional one from the rollout, which
halves the cost of every trained step (the gradient reaches the UNet through ``w * cond``).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from huajia.engine.images import to_pil
from huajia.errors import HuajiaError
from huajia.training.rl.ddim import DdimSteps, log_prob, noisy_positions
from huajia.training.rl.prompts import TrainPrompt

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def sd_style(pipe) -> bool:
    """An SD 1.x/2.x-style pipeline: one text encoder's hidden states condition a UNet (what
    every method, GRPO's per-step likelihoods included, trains here)."""
    parts = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
    return (all(getattr(pipe, p, None) is not None for p in parts)
            and not getattr(pipe.unet.config, "addition_embed_type", None))


def check_pipeline(pipe) -> None:
    """RL trains SD-style UNets conditioned on one text encoder's hidden states."""
    parts = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
    missing = [p for p in parts if getattr(pipe, p, None) is None]
    if missing:
        raise HuajiaError(f"RL needs a Stable Diffusion-style pipeline (unet, vae, text_encoder, tokenizer); "
                          f"{type(pipe).__name__} has no {', '.join(missing)}")
    if getattr(pipe.unet.config, "addition_embed_type", None):
        raise HuajiaError(f"RL supports SD 1.x/2.x-style UNets; this one ({type(pipe).__name__}) needs "
                          "added conditioning (SDXL); train a LoRA on it instead")


class Policy:
    def __init__(self, pipe, *, guidance: float, lora_rank: int | None = None):
        check_pipeline(pipe)
        self.pipe, self.unet, self.guidance = pipe, pipe.unet, guidance
        self.device = pipe.unet.device
        pipe.text_encoder.requires_grad_(False).eval()
        pipe.vae.requires_grad_(False).eval()
        self.lora_rank = lora_rank
        if lora_rank:
            from peft import LoraConfig

            self.unet.requires_grad_(False)
            self.unet.add_adapter(LoraConfig(r=lora_rank, lora_alpha=lora_rank, init_lora_weights="gaussian",
                                             target_modules=LORA_TARGETS))
            self.reference = None
        else:
            self.reference = copy.deepcopy(self.unet).requires_grad_(False).eval()
            self.unet.requires_grad_(True)
        self.unet.eval()  # no dropout: log-probs must be reproducible
        self.latent_channels = self.unet.config.in_channels
        self.latent_side = self.unet.config.sample_size

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.unet.parameters() if p.requires_grad]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        names = {n for n, p in self.unet.named_parameters() if p.requires_grad}
        return {k: v.detach().clone() for k, v in self.unet.state_dict().items() if k in names}

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        tok = self.pipe.tokenizer
        ids = tok(texts, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids.to(self.device)
        return self.pipe.text_encoder(ids)[0]

    def drop_captions(self, cond: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
        """``cond`` with the rows where ``dropped`` holds replaced by the empty prompt's."""
        return torch.where(dropped[:, None, None], self.encode([""])[0], cond)

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, cond).sample

    @torch.no_grad()
    def reference_predict(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.reference is not None:
            return self.reference(x, t, cond).sample
        with self._adapters_off():
            return self.unet(x, t, cond).sample

    @contextmanager
    def _adapters_off(self):
        self.unet.disable_adapters()
        try:
            yield
        finally:
            self.unet.enable_adapters()

    def guided(self, uncond_pred: torch.Tensor, cond_pred: torch.Tensor) -> torch.Tensor:
        return uncond_pred + self.guidance * (cond_pred - uncond_pred)

    def step_log_prob(self, steps: DdimSteps, rollout: Rollout, rows, cols, eta: float,
                      with_reference: bool):
        return step_log_prob(self, steps, rollout, rows, cols, eta, with_reference)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> list:
        vae = self.pipe.vae
        return to_pil(vae.decode(latents / vae.config.scaling_factor).sample)


@dataclass
class Rollout:
    """A batch of sampled pictures and, for the stochastic steps, what each step drew."""

    prompts: list[TrainPrompt]
    cond: torch.Tensor  # (B, L, D) prompt embeddings
    latents: torch.Tensor  # (B, C, h, w) the final clean latents
    positions: tuple[int, ...]  # which of the sampler's steps were stochastic
    states: torch.Tensor  # (B, S, C, h, w) x_t before each stochastic step
    nexts: torch.Tensor  # (B, S, C, h, w) the x_{t-1} it drew
    log_probs: torch.Tensor  # (B, S) their log-probabilities under the sampling policy
    uncond: torch.Tensor  # (B, S, C, h, w) the unconditional prediction at that step
    images: list


def sampling_start(policy: Policy, steps: DdimSteps, prompts: list[TrainPrompt],
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What a sampling run starts from: the prompts' encodings, the empty prompt's, and the
    initial noise at the scheduler's scale (drawn first from ``generator``)."""
    batch = len(prompts)
    cond = policy.encode([p.text for p in prompts])
    uncond = policy.encode([""]).expand(batch, -1, -1)
    shape = (batch, policy.latent_channels, policy.latent_side, policy.latent_side)
    noise = torch.randn(shape, generator=generator).to(policy.device)
    return cond, uncond, noise * steps.scheduler.init_noise_sigma


def walk(x: torch.Tensor, n_steps: int, positions: tuple[int, ...], generator: torch.Generator,
         denoise) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The sampling loop both samplers share: ``denoise(i, x, stochastic)`` gives step i's
    (mean, std, unconditional prediction or None); a step in ``positions`` draws around its
    mean and is recorded. Returns the final latent and the stacked (states, nexts, log_probs,
    uncond) of the recorded steps."""
    states, nexts, log_probs, uncond_preds = [], [], [], []
    for i in range(n_steps):
        stochastic = i in positions
        mean, std, u = denoise(i, x, stochastic)
        if not stochastic:
            x = mean
            continue
        following = mean + std * torch.randn(x.shape, generator=generator).to(x.device)
        states.append(x)
        nexts.append(following)
        log_probs.append(log_prob(following, mean, std))
        if u is not None:
            uncond_preds.append(u)
        x = following
    return x, tuple(_stack(items) for items in (states, nexts, log_probs, uncond_preds))


def _stack(items: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(items, dim=1) if items else torch.empty(0)


@torch.no_grad()
def sample(policy: Policy, steps: DdimSteps, prompts: list[TrainPrompt], seed: int, *,
           eta: float, positions: tuple[int, ...]) -> Rollout:
    """Sample one picture per prompt with guidance; steps in ``positions`` use η = ``eta``
    (and are recorded), the others are deterministic DDIM (η = 0, as deployed)."""
    positions = noisy_positions(steps, positions)
    generator = torch.Generator().manual_seed(seed)
    batch = len(prompts)
    cond, uncond, x = sampling_start(policy, steps, prompts, generator)

    def denoise(i: int, x: torch.Tensor, stochastic: bool):
        t_batch = steps.timesteps[i].expand(batch)
        both = policy.unet(torch.cat([x, x]), torch.cat([t_batch, t_batch]),
                           torch.cat([uncond, cond])).sample
        u, c = both.chunk(2)  # one fused call for both branches
        mean, std = steps.mean_std(policy.guided(u, c), x, t_batch, eta if stochastic else 0.0)
        return mean, std, u

    x, recorded = walk(x, len(steps.timesteps), positions, generator, denoise)
    return Rollout(prompts, cond, x, tuple(positions), *recorded, policy.decode(x))


def step_log_prob(policy: Policy, steps: DdimSteps, rollout: Rollout, rows: torch.Tensor,
                  cols: torch.Tensor, eta: float, with_reference: bool):
    """Log-probability (with grad) of the recorded draws (rows = samples, cols = stochastic step
    index) under the current policy, and the KL to the reference at those steps."""
    t = steps.timesteps[torch.tensor([rollout.positions[int(c)] for c in cols])]
    return recorded_log_prob(policy, rollout, rows, cols, t,
                             lambda pred, x: steps.mean_std(pred, x, t, eta), with_reference)


def recorded_log_prob(policy, rollout: Rollout, rows: torch.Tensor, cols: torch.Tensor,
                      t: torch.Tensor, mean_std, with_reference: bool):
    """What both samplers' ``step_log_prob`` share: the recorded draws' log-probability under
    the policy's guided step (``mean_std(prediction, x)``) and, ``with_reference``, the KL to the
    frozen reference's step. The unconditional prediction is the rollout's (none without CFG)."""
    x, following = rollout.states[rows, cols], rollout.nexts[rows, cols]
    u, cond = (rollout.uncond[rows, cols] if rollout.uncond.numel() else None), rollout.cond[rows]
    mean, std = mean_std(policy.guided(u, policy.predict(x, t, cond)), x)
    kl = None
    if with_reference:
        ref_mean, _ = mean_std(policy.guided(u, policy.reference_predict(x, t, cond)), x)
        kl = ((mean - ref_mean) ** 2 / (2 * std ** 2)).flatten(1).mean(dim=1)
    return log_prob(following, mean, std), kl
