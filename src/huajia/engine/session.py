"""One run's hold on the pipeline, and what a step callback may see and change.

``Engine.session(request)`` returns a ``Session``: on entry it makes the request's LoRAs active
and attaches the run's model hooks; inside, every denoising run gets a fresh scheduler of the
request's kind; on exit the hooks come off and the scheduler and LoRAs are put back as they were.
So no run inherits another's state, and nothing above the engine touches ``engine.pipe``.

Step callbacks are small classes in the style of diffusers' ``PipelineCallback``: called with a
``DenoiseStep`` after every step; they may replace its latents or stop the run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from PIL import Image

from huajia.engine.edits import latent_mask
from huajia.engine.families.base import CallPlan
from huajia.engine.images import to_pil, to_tensor
from huajia.engine.partial import KeepKnown, first_step, tail_scheduler
from huajia.engine.schedulers import make_scheduler
from huajia.errors import HuajiaError

if TYPE_CHECKING:
    from huajia.engine.families import Family
    from huajia.engine.parallel import SplitBatch
    from huajia.engine.request import GenerationRequest, LoraSpec


class Holder(Protocol):
    """What a session needs of the engine that opened it (``Engine`` is one); a protocol, so
    this module does not import the engine that imports it."""

    pipe: Any
    family: Family
    dtype: torch.dtype
    base_scheduler_config: dict
    active_loras: tuple[LoraSpec, ...]
    split: SplitBatch | None

    @property
    def denoiser(self) -> torch.nn.Module: ...

    def activate_loras(self, loras: tuple[LoraSpec, ...]) -> None: ...

    def sampler_for(self, request: GenerationRequest) -> str: ...


class ModelHook(Protocol):
    """Something that wraps the denoiser's forward pass for one run (e.g. regional prompts)."""

    def attach(self, denoiser: torch.nn.Module) -> None: ...

    def close(self) -> None: ...


@dataclass
class DenoiseStep:
    """The state after one denoising step, as a callback sees it."""

    index: int  # 0-based index of the step just done
    total: int
    latents: torch.Tensor  # replace to change what the next step starts from
    _scheduler: object = field(repr=False)
    interrupted: bool = False

    @property
    def done(self) -> int:
        return self.index + 1

    @property
    def has_next(self) -> bool:
        return self.index + 1 < len(self._scheduler.timesteps)

    def interrupt(self) -> None:
        """Skip the rest of the schedule (diffusers' ``pipe._interrupt``)."""
        self.interrupted = True

    def x0(self, sample: torch.Tensor, timestep, output: torch.Tensor) -> torch.Tensor:
        """x0-prediction from a denoiser input and its guided output (VP parametrisation)."""
        scheduler = self._scheduler
        t = timestep[0] if torch.is_tensor(timestep) and timestep.ndim else timestep
        index = int(torch.as_tensor(t).round().clamp(0, len(scheduler.alphas_cumprod) - 1))
        alpha = scheduler.alphas_cumprod[index].to(sample.dtype)
        if scheduler.config.prediction_type == "v_prediction":
            return alpha.sqrt() * sample - (1 - alpha).sqrt() * output
        return (sample - (1 - alpha).sqrt() * output) / alpha.sqrt().clamp(min=1e-4)

    def noised_for_next(self, clean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``clean`` noised to the level the next step starts from (``clean`` after the last)."""
        if not self.has_next:
            return clean
        timesteps = self._scheduler.timesteps
        return self._scheduler.add_noise(clean, noise, timesteps[self.index + 1:self.index + 2])


class StepCallback(Protocol):
    def __call__(self, step: DenoiseStep) -> None: ...


class Session:
    def __init__(self, engine: Holder, request: GenerationRequest,
                 hooks: Sequence[ModelHook] = ()):
        self.engine, self.request, self.hooks = engine, request, tuple(hooks)
        self._saved: tuple | None = None
        self.plan = CallPlan({})  # the family's part of the last pipeline call

    def __enter__(self) -> Session:
        pipe = self.engine.pipe
        self._saved = (pipe.scheduler, self.engine.active_loras)
        self.engine.activate_loras(self.request.loras)
        if self.engine.split is not None:
            self.engine.split.attach(self.engine.denoiser)
        for hook in self.hooks:
            hook.attach(self.engine.denoiser)
        return self

    def attach(self, hook: ModelHook) -> None:
        """Attach one more hook for the rest of the session."""
        hook.attach(self.engine.denoiser)
        self.hooks += (hook,)

    def __exit__(self, *exc) -> None:
        for hook in self.hooks:
            hook.close()
        if self.engine.split is not None:
            self.engine.split.close()
        scheduler, loras = self._saved
        self.engine.pipe.scheduler = scheduler
        self.engine.activate_loras(loras)

    # -- what a run does with the pipeline -------------------------------------------------
    def fresh_scheduler(self) -> None:
        engine = self.engine
        engine.pipe.scheduler = make_scheduler(self.request.scheduler,
                                               engine.base_scheduler_config)

    def denoise(self, prompt_kwargs: dict, generator, size: tuple[int, int],
                callback: StepCallback | None = None, output_type: str = "pil"):
        """One run of the text-to-image pipeline from fresh noise; returns its images (PIL, or
        with ``output_type='latent'`` the session's latents: (B, C, h, w), unpacked)."""
        self.fresh_scheduler()
        request, pipe, family = self.request, self.engine.pipe, self.engine.family
        self.plan = family.call_plan(pipe, request, _has_negative(prompt_kwargs))
        cutoff = CfgCutoff.for_request(request, pipe)
        call = {**prompt_kwargs, **self.plan.kwargs, "num_inference_steps": request.steps,
                "width": size[0], "height": size[1], "num_images_per_prompt": 1,
                "generator": generator, "output_type": _tensor_type(output_type),
                **self._callbacks(callback, cutoff)}
        with family.sized(pipe, size):
            images = pipe(**call).images
        if output_type == "latent":
            return family.unpack(pipe, images, size)
        return self._pictures(images) if output_type == "pil" else images

    # -- painting again: edits, variations, the hires fix, thinking's repaints ------------------
    # Pictures go through the family's diffusers image-to-image or inpainting pipeline where it
    # has one; latents, and the pictures of a family without one, through huajia's own partial
    # denoise (engine/partial). The session's latents are the denoiser's, unpacked: (B, C, h, w).
    def repaint(self, prompt_kwargs: dict, latents: torch.Tensor, mask: torch.Tensor,
                strength: float, seed: int) -> torch.Tensor:
        """Paint the masked part of ``latents`` (``mask`` at their size, 1 where to paint)
        again from ``strength`` of the way back into the noise; outside it the latents are
        kept at every step."""
        generator = torch.Generator(device="cpu").manual_seed(seed)
        return self.partial(prompt_kwargs, latents, strength, self.request.steps, [generator],
                            mask=mask)

    def img2img(self, prompt_kwargs: dict, image, strength: float, steps: int, generator,
                callback: StepCallback | None = None) -> list:
        """Image-to-image: ``image`` (pictures, or the session's latents) painted again from
        ``strength`` of the way back into the noise, one generator a picture; PIL pictures."""
        family, pipe = self.engine.family, self.engine.pipe
        name = None if torch.is_tensor(image) else family.img2img_pipeline(pipe)
        if name is not None:
            return self._sibling(name, prompt_kwargs, steps, generator, callback,
                                 image=list(image), strength=strength)
        latents = image if torch.is_tensor(image) else \
            torch.cat([self.encode_image(picture) for picture in image])
        return self._decoded(self.partial(prompt_kwargs, latents, strength, steps, generator,
                                          callback=callback))

    def inpaint(self, prompt_kwargs: dict, picture: Image.Image, area: np.ndarray,
                strength: float, generator: torch.Generator) -> Image.Image:
        """A masked edit of ``picture``: its ``area`` ((H, W), 1 where to paint) painted again
        from ``strength`` of the way back into the noise. The pixels outside the area are the
        caller's to put back exactly (``edits.composite``)."""
        family, pipe = self.engine.family, self.engine.pipe
        name = family.inpaint_pipeline(pipe)
        if name is not None:
            mask = Image.fromarray((area * 255).astype(np.uint8), "L")
            return self._sibling(name, prompt_kwargs, self.request.steps, [generator], None,
                                 image=[picture], mask_image=[mask], strength=strength)[0]
        latents = self.encode_image(picture)
        mask = latent_mask(area, tuple(latents.shape[-2:]), latents.device)
        return self._decoded(self.partial(prompt_kwargs, latents, strength, self.request.steps,
                                          [generator], mask=mask))[0]

    def partial(self, prompt_kwargs: dict, latents: torch.Tensor, strength: float, steps: int,
                generator, *, mask: torch.Tensor | None = None,
                callback: StepCallback | None = None) -> torch.Tensor:
        """huajia's own partial denoise (engine/partial): ``latents`` noised to the level of the
        first step ``strength`` keeps of a ``steps``-step schedule, then painted over the rest
        by the text-to-image pipeline; where ``mask`` is 0 the known latents are kept at every
        step. Returns the painted latents (B, C, h, w)."""
        from diffusers.utils.torch_utils import randn_tensor

        start = first_step(steps, strength)
        if start >= steps:
            return latents
        self.fresh_scheduler()
        pipe, family = self.engine.pipe, self.engine.family
        scale = self.latent_scale
        size = (latents.shape[-1] * scale, latents.shape[-2] * scale)
        dtype = family.denoiser(pipe).dtype
        known = latents.to(dtype)
        noise = randn_tensor(known.shape, generator=generator, device=known.device, dtype=dtype)
        keep = None
        if mask is not None:  # (1, 1, h, w) → the pipeline's layout, like the latents
            mask = mask.to(known.device, dtype).expand(1, known.shape[1], -1, -1)
            keep = KeepKnown(family.pack(pipe, known), family.pack(pipe, noise),
                             family.pack(pipe, mask), family)
        scheduler = tail_scheduler(pipe.scheduler, steps, start,
                                   family.schedule_kwargs(pipe, size, steps), keep)
        scheduler.set_timesteps()
        pipe.scheduler = scheduler
        self.plan = family.call_plan(pipe, self.request, _has_negative(prompt_kwargs))
        call = {**prompt_kwargs, **self.plan.kwargs, "num_inference_steps": steps,
                "width": size[0], "height": size[1], "num_images_per_prompt": 1,
                "generator": generator, "output_type": "latent",
                "latents": family.pack(pipe, family.noise_to(scheduler, known, noise, 0)),
                **self._callbacks(callback, None)}
        with family.sized(pipe, size):
            painted = pipe(**call).images
        return family.unpack(pipe, painted, size)

    def _sibling(self, name: str, prompt_kwargs: dict, steps: int, generator,
                 callback: StepCallback | None, **inputs) -> list:
        """One run of the family's diffusers image-to-image or inpainting pipeline ``name``,
        built on the same components (``from_pipe``): pictures in, PIL pictures out."""
        import diffusers

        self.fresh_scheduler()
        pipe, family = self.engine.pipe, self.engine.family
        sibling = getattr(diffusers, name).from_pipe(pipe)
        sibling.set_progress_bar_config(disable=True)
        width, height = inputs["image"][0].size
        plan = family.call_plan(pipe, self.request, _has_negative(prompt_kwargs))
        call = {**prompt_kwargs, **plan.kwargs, **inputs, "num_inference_steps": steps,
                "width": width, "height": height, "generator": generator, "output_type": "pt",
                "callback_on_step_end": self._adapter(callback)}
        call, self.plan = _taken(sibling, call, plan)
        return self._pictures(sibling(**call).images)

    def encode_caption(self, caption: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(1, window, D) embeddings of one caption (its first chunk) and its pooled vector."""
        return self.engine.family.caption_embeds(self.engine.pipe, caption)

    def decode(self, latents: torch.Tensor) -> Image.Image:
        """The first of the session's latents as a picture (the family's VAE and latent format)."""
        return self._decoded(latents[:1])[0]

    def _decoded(self, latents: torch.Tensor) -> list:
        pipe = self.engine.pipe
        pixels = self.engine.family.to_image(pipe, latents)
        if not torch.isfinite(pixels).all():
            raise self._not_finite("in the VAE's decode")
        return to_pil(pixels)

    # -- non-finite results are errors, never black pictures (A1111's NansException) -----------
    def _adapter(self, callback: StepCallback | None, cutoff: CfgCutoff | None = None):
        return _adapter(callback, cutoff, on_not_finite=self._not_finite)

    def _callbacks(self, callback: StepCallback | None, cutoff: CfgCutoff | None) -> dict:
        """The call's step callbacks: diffusers' step-end callback, or the legacy per-step one
        (which sees the latents but cannot change them) where a pipeline has only that."""
        if self.engine.family.step_callback:
            extra = {"callback_on_step_end_tensor_inputs": cutoff.tensor_inputs} if cutoff else {}
            return {"callback_on_step_end": self._adapter(callback, cutoff), **extra}
        adapter = self._adapter(callback)

        def legacy(index: int, timestep, latents: torch.Tensor) -> None:
            # such pipelines keep no num_timesteps; the whole schedule is the run (text to image)
            pipe = self.engine.pipe
            adapter(pipe, index, timestep, {"latents": latents},
                    total=len(pipe.scheduler.timesteps))

        return {"callback": legacy, "callback_steps": 1}

    def _pictures(self, images: torch.Tensor) -> list:
        """PIL pictures of a pipeline's ``pt`` output (what ``output_type='pil'`` would give),
        after checking that the VAE decoded finite pixels."""
        if not torch.isfinite(images).all():
            raise self._not_finite("in the VAE's decode")
        processor = self.engine.pipe.image_processor
        return processor.numpy_to_pil(processor.pt_to_numpy(images))

    def _not_finite(self, where: str) -> HuajiaError:
        engine = self.engine
        return HuajiaError(
            f"the picture became NaN or infinite {where} (sampler "
            f"'{engine.sampler_for(self.request)}', {str(engine.dtype).removeprefix('torch.')}); "
            "paint in float32, try another sampler (--scheduler, e.g. dpmpp_2m) or give the "
            "LoRAs less weight")

    def encode_image(self, image: Image.Image) -> torch.Tensor:
        """A picture as the session's latents (1, C, h, w): the family's VAE and latent format."""
        return self.engine.family.to_latents(self.engine.pipe, to_tensor([image]))

    @property
    def latent_scale(self) -> int:
        return int(self.engine.pipe.vae_scale_factor)

    # -- what thinking's pauses read of a step, the family's way --------------------------------
    def x0_of_step(self, step: DenoiseStep, before: torch.Tensor,
                   size: tuple[int, int]) -> torch.Tensor | None:
        """x0 predicted at ``step`` from the latents before it (the family's ``x0_from_step``),
        as the session's latents (1, C, h, w); None where the family cannot tell it this way."""
        family = self.engine.family
        x0 = family.x0_from_step(step._scheduler, before[:1], step.latents[:1], step.index)
        return None if x0 is None else family.unpack(self.engine.pipe, x0, size)

    def unpacked(self, latents: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """A step's latents (the pipeline's layout) as the session's (B, C, h, w)."""
        return self.engine.family.unpack(self.engine.pipe, latents, size)

    def packed(self, latents: torch.Tensor) -> torch.Tensor:
        """The session's latents in the pipeline's layout (what a step callback holds)."""
        return self.engine.family.pack(self.engine.pipe, latents)

    def noised_for_next(self, step: DenoiseStep, clean: torch.Tensor,
                        noise: torch.Tensor) -> torch.Tensor:
        """``clean`` noised, the family's way, to the level the step after ``step`` starts
        from (clean after the last)."""
        return self.engine.family.noise_to(step._scheduler, clean, noise, step.index + 1)


class CfgCutoff:
    """Classifier-free guidance on the first ``fraction`` of the steps only (diffusers'
    ``SDCFGCutoffCallback``, batch-safe): after that the pipeline runs the conditional half
    of the batch alone, so each later step costs one network pass instead of two."""

    TENSORS = ("prompt_embeds", "add_text_embeds", "add_time_ids")  # [uncond, cond] pairs

    def __init__(self, cutoff_step: int, tensor_inputs: list[str]):
        self.cutoff_step, self.tensor_inputs = cutoff_step, tensor_inputs

    @classmethod
    def for_request(cls, request, pipe) -> CfgCutoff | None:
        if request.cfg_cutoff >= 1 or request.guidance <= 1:
            return None
        known = list(getattr(pipe, "_callback_tensor_inputs", ()))
        if "prompt_embeds" not in known:
            raise HuajiaError(f"cfg_cutoff needs a pipeline whose step callback sees "
                              f"prompt_embeds ({type(pipe).__name__} does not); use cfg_cutoff 1")
        inputs = ["latents"] + [name for name in cls.TENSORS if name in known]
        # the step after which guidance stops; at least one guided step
        return cls(max(1, round(request.cfg_cutoff * request.steps)) - 1, inputs)

    def __call__(self, pipe, index: int, kwargs: dict) -> None:
        if index != self.cutoff_step or not index + 1 < pipe.num_timesteps:
            return
        pipe._guidance_scale = 0.0
        for name in self.tensor_inputs[1:]:
            if kwargs.get(name) is not None:
                kwargs[name] = kwargs[name].chunk(2)[1]


def _has_negative(prompt_kwargs: dict) -> bool:
    """Does any picture of this call have a negative prompt (as text or as embeddings)?"""
    negative = prompt_kwargs.get("negative_prompt")
    if negative is None:
        return "negative_prompt_embeds" in prompt_kwargs
    return any(n and n.strip() for n in ([negative] if isinstance(negative, str) else negative))


def _taken(pipeline, call: dict, plan: CallPlan) -> tuple[dict, CallPlan]:
    """``call`` less what ``pipeline`` does not take (an image-to-image pipeline may lack a
    text-to-image switch, e.g. SD's CFG rescale), and ``plan`` with a note for each dropped
    setting that would have mattered (the size is the picture's)."""
    params = inspect.signature(type(pipeline).__call__).parameters
    named = {key for key, param in params.items()
             if param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)}
    dropped = [key for key, value in call.items() if key not in named
               and key not in ("width", "height") and value not in (None, False, 0, "")]
    notes = tuple(f"{key} is not applied by {type(pipeline).__name__}; it had no effect"
                  for key in dropped)
    return ({key: value for key, value in call.items() if key in named},
            CallPlan(plan.kwargs, plan.fields, plan.notes + notes))


def _tensor_type(output_type: str) -> str:
    """The pipeline's output type: pictures come back as tensors so NaN can be seen."""
    return "pt" if output_type == "pil" else output_type


def _adapter(callback: StepCallback | None, cutoff: CfgCutoff | None = None, *,
             on_not_finite: Callable[[str], Exception]):
    """A diffusers ``callback_on_step_end`` that stops the run at the first step whose latents
    are not finite, shows ``callback`` a ``DenoiseStep`` and stops guidance at the cutoff."""

    def step_end(pipe, index, timestep, kwargs, total: int | None = None):
        total = total or pipe.num_timesteps
        if not torch.isfinite(kwargs["latents"]).all():
            raise on_not_finite(f"at step {index + 1} of {total}")
        if callback is not None:
            step = DenoiseStep(index, total, kwargs["latents"], pipe.scheduler)
            callback(step)
            kwargs["latents"] = step.latents
            if step.interrupted:
                pipe._interrupt = True
        if cutoff is not None:
            cutoff(pipe, index, kwargs)
        return kwargs

    return step_end
