"""What a model family changes, in one place (after ComfyUI's ``supported_models``): mostly
data, with a few methods for what is not. The engine and its session ask the family; they do
not ask the pipeline what it has.

A ``Family`` answers: is this pipeline one of mine; what is the denoiser; what size does it
paint natively and in what multiples; does it denoise by noise/v prediction or by flow
matching; how does a prompt reach it (A1111 weights on CLIP embeddings, or the strings its own
``encode_prompt`` takes); what does a user's guidance mean for it (classifier-free guidance,
Flux's distilled guidance, Qwen-Image's true CFG, Z-Image's offset scale) and which options of
a request it cannot honour (refused in one line, never silently dropped).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from huajia.engine.prompt_weights import plain_text
from huajia.errors import HuajiaError


@dataclass(frozen=True)
class CallPlan:
    """The family-specific part of one pipeline call, and what the infotext records of it."""

    kwargs: dict  # guidance and the pipeline's own switches
    fields: dict = field(default_factory=dict)  # infotext keys (e.g. Flux's "Distilled CFG")
    notes: tuple[str, ...] = ()  # what the user asked that had no effect, and why


class Family:
    """The default is a Stable Diffusion-style UNet pipeline; families override what differs."""

    name = "generic"
    label = "diffusers pipeline"
    pipelines: tuple[str, ...] = ()  # pipeline class names that are this family
    denoiser_name = "unet"  # the pipeline component that denoises
    flow = False  # denoises by flow matching (velocity), not noise/v prediction
    packed = False  # latents packed in 2x2 patches (sizes in multiples of 2 latent pixels)
    patch = 1  # the denoiser's patch size in latent pixels
    native = 1024  # the native side when the denoiser's config does not say
    weighted = False  # A1111 weights as CLIP embeddings (engine/embeddings)
    guidance_rescale = False  # the pipeline takes guidance_rescale
    cfg_cutoff = False  # guidance can stop part-way (an [uncond, cond] batch in the callback)
    step_callback = True  # the pipeline takes callback_on_step_end
    cpu_split = False  # engine/parallel may trace the denoiser and split its batch
    negative = "negative_prompt"  # the keyword of a negative prompt (None: it has none)
    defaults: dict[str, Any] = {}  # switches every call passes (e.g. no resolution binning)

    # -- recognising ------------------------------------------------------------------------
    def matches(self, pipe) -> bool:
        return type(pipe).__name__ in self.pipelines

    def denoiser(self, pipe):
        return getattr(pipe, self.denoiser_name)

    # -- sizes ------------------------------------------------------------------------------
    def native_size(self, pipe) -> int:
        sample = getattr(self.denoiser(pipe).config, "sample_size", None)
        if isinstance(sample, (list, tuple)):
            sample = sample[0]
        return int(sample) * self.vae_scale(pipe) if sample else self.native

    def vae_scale(self, pipe) -> int:
        return int(getattr(pipe, "vae_scale_factor", 8))

    def size_multiple(self, pipe) -> int:
        return self.vae_scale(pipe) * max(self.patch, 2 if self.packed else 1)

    def check_size(self, pipe, size: tuple[int, int]) -> None:
        step = self.size_multiple(pipe)
        if size[0] % step or size[1] % step:
            fit = "x".join(str(max(step, round(s / step) * step)) for s in size)
            raise HuajiaError(f"{self.label} paints sizes in multiples of {step}; "
                              f"{size[0]}x{size[1]} is not one (use e.g. {fit})")

    # -- what the model predicts ------------------------------------------------------------
    def prediction(self, pipe) -> str:
        """'flow', 'v_prediction' or 'epsilon'."""
        if self.flow:
            return "flow"
        return str(pipe.scheduler.config.get("prediction_type", "epsilon"))

    # -- prompts ----------------------------------------------------------------------------
    def prompt_kwargs(self, pipe, prompt: str, negative: str) -> dict:
        """The strings the pipeline's own ``encode_prompt`` takes (weights not applied)."""
        kwargs = {"prompt": plain_text(prompt)}
        if self.negative:
            kwargs[self.negative] = plain_text(negative)  # "" where none (some take no None)
        return kwargs

    def prompt_notes(self, prompt: str, negative: str) -> tuple[str, ...]:
        """What the prompt asked that this family does not honour yet."""
        if self.weighted or plain_text(prompt) == prompt.strip() and \
                plain_text(negative) == negative.strip():
            return ()
        return (f"prompt weights and BREAK are not applied on {self.label} yet; the words were "
                "painted at weight 1",)

    # -- one call ---------------------------------------------------------------------------
    def call_plan(self, pipe, request, has_negative: bool) -> CallPlan:
        """Guidance as the user means it for this family, and the pipeline's switches."""
        self.check_request(request)
        kwargs = {"guidance_scale": request.guidance, **self.defaults}
        if self.guidance_rescale:
            kwargs["guidance_rescale"] = request.guidance_rescale
        return CallPlan(kwargs)

    def check_request(self, request) -> None:
        if request.guidance_rescale and not self.guidance_rescale:
            raise HuajiaError(f"guidance_rescale is not available on {self.label} (its pipeline "
                              "has no CFG rescale); use guidance_rescale 0")
        if request.cfg_cutoff < 1 and not self.cfg_cutoff:
            raise HuajiaError(f"cfg_cutoff is not available on {self.label}; use cfg_cutoff 1")

    def sized(self, pipe, size: tuple[int, int]):
        """A context in which the pipeline paints ``size`` (most do when asked)."""
        return nullcontext()

    # -- what a front end shows ---------------------------------------------------------------
    def describe(self, pipe) -> dict:
        from huajia.engine.schedulers import SAMPLERS, flow_samplers

        return {"family": self.name, "label": self.label, "pipeline": type(pipe).__name__,
                "native_size": self.native_size(pipe), "size_multiple": self.size_multiple(pipe),
                "prediction": self.prediction(pipe),
                "samplers": flow_samplers() if self.flow else list(SAMPLERS),
                "features": {"prompt_weights": self.weighted,
                             "negative_prompt": self.negative is not None,
                             "guidance_rescale": self.guidance_rescale,
                             "cfg_cutoff": self.cfg_cutoff}}
