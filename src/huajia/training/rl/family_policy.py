"""The policy for any model family (SDXL and Kolors with their added conditions, and the
flow-matching families: SD3, FLUX.1, Chroma, Qwen-Image, Z-Image, Sana, Lumina 2): nft and craft
from the pipeline's own final pictures, grpo through a sampler of huajia's own whose stochastic
steps keep their likelihoods (``rl/family_sde.py``: Flow-GRPO's SDE, or DDIM).

Pictures are painted by the family's own pipeline, as deployed (its sampler, its guidance as
the family means it), and returned as latents. Training asks the family: each caption's
denoiser call is captured from the pipeline (``training/denoiser_call.py``: text embeddings,
pooled vectors, SDXL's time ids, position ids, masks), the latents are noised by the family's
objective (``training/objectives.py``: DDPM ε/v with Min-SNR weights, or rectified flow with
logit-normal σ and the family's shift, target ε − x0), and its prediction read back unpacked.
The whole denoiser learns, a frozen copy the reference; or, with ``--lora-rank`` (Flow-GRPO's
way), a LoRA on the family's training targets learns and the denoiser without it is the
reference.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from huajia.engine.images import to_pil
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError
from huajia.training.denoiser_call import CaptionCalls, DenoiserCall, stacked
from huajia.training.objectives import objective_for
from huajia.training.rl.policy import Rollout
from huajia.training.rl.prompts import TrainPrompt

MIN_SNR_GAMMA = 5.0  # the base recipe's, for the noise-prediction families


@dataclass(frozen=True)
class Captions:
    """A batch's denoiser calls (one per picture): what ``Rollout.cond`` holds for a family."""

    calls: tuple[DenoiserCall, ...]

    def __getitem__(self, index: torch.Tensor) -> Captions:
        return Captions(tuple(self.calls[int(i)] for i in index.reshape(-1).tolist()))

    def __len__(self) -> int:
        return len(self.calls)


class FamilySteps:
    """The family's training objective in the shape the methods ask of ``DdimSteps``."""

    def __init__(self, objective):
        self.objective = objective

    def training_draw(self, x0: torch.Tensor, generator: torch.Generator):
        noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
        noised = self.objective.noised(x0, noise, generator)
        return noised.latents, noised.timesteps, noised.target, noised.weights

    def shared_noise(self, x0: torch.Tensor, copies: int, generator: torch.Generator):
        """As ``methods.shared_noise``: the k-th row of every copy under the same time and noise."""
        rows = x0.shape[0] // copies
        noise = torch.randn((rows, *x0.shape[1:]), generator=generator).to(x0.device, x0.dtype)
        t = self.objective.noised(x0[:rows], noise, generator).timesteps.repeat(copies)
        noised = self.objective.at(x0, noise.repeat(copies, *([1] * (x0.dim() - 1))), t)
        return noised.latents, noised.timesteps, noised.target


class FamilyPolicy:
    """A family's pipeline whose denoiser learns in full, with a frozen copy for reference."""

    def __init__(self, pipe, family, *, guidance: float, side: int | None, sample_steps: int,
                 lora_rank: int | None = None):
        self.pipe, self.family, self.guidance, self.sample_steps = pipe, family, guidance, sample_steps
        self.lora_rank = lora_rank
        self.unet = family.denoiser(pipe)  # the name run.py and snapshots use for what learns
        self.device = self.unet.device
        self.side = side or family.native_size(pipe)
        family.check_size(pipe, (self.side, self.side))
        for name in ("text_encoder", "text_encoder_2", "text_encoder_3", "vae"):
            module = getattr(pipe, name, None)
            if isinstance(module, torch.nn.Module):
                module.requires_grad_(False).eval()
        if lora_rank:  # Flow-GRPO's way: a LoRA learns, the denoiser without it is the reference
            from peft import LoraConfig

            self.unet.requires_grad_(False)
            self.unet.add_adapter(LoraConfig(r=lora_rank, lora_alpha=lora_rank, init_lora_weights="gaussian",
                                             target_modules=family.training_targets(pipe)))
            self.reference = None
        else:
            self.reference = copy.deepcopy(self.unet).requires_grad_(False).eval()
            self.unet.requires_grad_(True)
        self.unet.eval()
        capture_guidance, self.cfg_scale = family.sampler_guidance(pipe, guidance)
        self.calls = CaptionCalls(pipe, family, self.side, grad=False, guidance=capture_guidance)
        self.steps = FamilySteps(objective_for(family, pipe, self.side, MIN_SNR_GAMMA,
                                               "logit_normal", "none"))

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.unet.parameters() if p.requires_grad]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        names = {n for n, p in self.unet.named_parameters() if p.requires_grad}
        return {k: v.detach().clone() for k, v in self.unet.state_dict().items()
                if k in names or not self.lora_rank}

    def encode(self, texts: list[str]) -> Captions:
        return Captions(tuple(self.calls(text) for text in texts))

    def unconditional(self, count: int) -> Captions:
        """Classifier-free guidance's calls: the empty negative prompt, ``count`` times."""
        return Captions((self.calls.negative(),) * count)

    def drop_captions(self, cond: Captions, dropped: torch.Tensor) -> Captions:
        empty = self.calls("")
        return Captions(tuple(empty if d else c for c, d in zip(cond.calls, dropped.tolist(), strict=True)))

    def _run(self, denoiser, x: torch.Tensor, t: torch.Tensor, cond: Captions) -> torch.Tensor:
        """The denoiser's prediction for each picture: one batched call where the captions'
        calls stack (``denoiser_call.stacked``), else one call a picture."""
        family, pipe, out = self.family, self.pipe, []
        batch = stacked(list(cond.calls))
        if batch is not None:
            raw = batch.run(denoiser, family.training_latents(pipe, x), family.training_time(pipe, t))
            return family.training_prediction(pipe, raw, x)
        for i, call in enumerate(cond.calls):  # Qwen-Image's texts of different lengths
            z = x[i:i + 1]
            raw = call.run(denoiser, family.training_latents(pipe, z), family.training_time(pipe, t[i:i + 1]))
            out.append(family.training_prediction(pipe, raw, z))
        return torch.cat(out)

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: Captions) -> torch.Tensor:
        return self._run(self.unet, x, t, cond)

    @torch.no_grad()
    def reference_predict(self, x: torch.Tensor, t: torch.Tensor, cond: Captions) -> torch.Tensor:
        if self.reference is not None:
            return self._run(self.reference, x, t, cond)
        from huajia.training.lora import switch_adapters

        switch_adapters([self.unet], False)
        try:
            return self._run(self.unet, x, t, cond)
        finally:
            switch_adapters([self.unet], True)

    def guided(self, uncond: torch.Tensor | None, cond: torch.Tensor) -> torch.Tensor:
        """The sampler's prediction: the family's guidance of the two (``cond`` alone at scale 1)."""
        if uncond is None:
            return cond
        return self.family.guided(self.pipe, uncond, cond, self.cfg_scale)

    def latent_shape(self) -> tuple[int, int, int]:
        side = self.side // self.family.vae_scale(self.pipe)
        return self.family.latent_channels(self.pipe), side, side

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> list:
        return to_pil(self.family.to_image(self.pipe, latents).float())

    def step_log_prob(self, steps, rollout: Rollout, rows, cols, eta: float, with_reference: bool):
        from huajia.training.rl.family_sde import sde_step_log_prob

        return sde_step_log_prob(self, steps, rollout, rows, cols, eta, with_reference)

    @torch.no_grad()
    def paint(self, texts: list[str], seed: int) -> tuple[torch.Tensor, list]:
        """The pipeline's pictures of ``texts`` (one each, seeded): unpacked latents (B, C, h, w)
        and the decoded pictures."""
        size = (self.side, self.side)
        request = GenerationRequest("rl", guidance=self.guidance, steps=self.sample_steps)
        kwargs = {"height": self.side, "width": self.side, "num_inference_steps": self.sample_steps,
                  "output_type": "latent", "generator": torch.Generator("cpu").manual_seed(seed),
                  **self.family.call_plan(self.pipe, request, has_negative=False).kwargs}
        with self.family.sized(self.pipe, size):
            latents = self.pipe(prompt=texts, **kwargs).images
        latents = self.family.unpack(self.pipe, latents, size).to(torch.float32)
        return latents, to_pil(self.family.to_image(self.pipe, latents).float())


@torch.no_grad()
def sample_family(policy: FamilyPolicy, prompts: list[TrainPrompt], seed: int) -> Rollout:
    latents, images = policy.paint([p.text for p in prompts], seed)
    empty = torch.empty(0)
    return Rollout(prompts, policy.encode([p.text for p in prompts]), latents, (), empty, empty, empty,
                   empty, images)


def check_family_method(method: str, lora_rank: int | None, family) -> None:
    """What RL on a family other than SD 1.x/2.x supports, refused in one line otherwise."""
    if method not in ("grpo", "dpo", "raft", "nft", "craft"):  # every method: a guard for new ones
        raise HuajiaError(f"--method {method} needs an SD 1.x/2.x-style UNet; on {family.label} use "
                          "--method grpo, dpo, raft, nft or craft")
    if lora_rank and family.lora_loader != "pipeline":
        raise HuajiaError(f"--lora-rank: {family.label}'s pipeline has no LoRA loader to save "
                          "for; drop --lora-rank (the whole denoiser learns)")
