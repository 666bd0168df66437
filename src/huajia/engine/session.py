"""One run's hold on the pipeline, and what a step callback may see and change.

``Engine.session(request)`` returns a ``Session``: on entry it makes the request's LoRAs active
and attaches the run's model hooks; inside, every denoising run gets a fresh scheduler of the
request's kind; on exit the hooks come off and the scheduler and LoRAs are put back as they were.
So no run inherits another's state, and nothing above the engine touches ``engine.pipe``.

Step callbacks are small classes in the style of diffusers' ``PipelineCallback``: called with a
``DenoiseStep`` after every step; they may replace its latents or stop the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

from huajia.engine.embeddings import encode_weighted
from huajia.engine.families.base import CallPlan
from huajia.engine.images import to_pil, to_tensor
from huajia.engine.schedulers import make_scheduler
from huajia.errors import HuajiaError

if TYPE_CHECKING:
    from PIL import Image

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


class KeepKnown:
    """Masked repaint: outside ``mask`` the latents follow ``known`` (noised to each step's
    level), so only the masked part is painted again."""

    def __init__(self, known: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor):
        self.known, self.noise, self.mask = known, noise, mask

    def __call__(self, step: DenoiseStep) -> None:
        known_now = step.noised_for_next(self.known, self.noise)
        step.latents = step.latents * self.mask + known_now * (1 - self.mask)


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
        latents with ``output_type='latent'``)."""
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
        return self._pictures(images) if output_type == "pil" else images

    def repaint(self, prompt_kwargs: dict, latents: torch.Tensor, mask: torch.Tensor,
                strength: float, seed: int) -> torch.Tensor:
        """Paint the masked part of ``latents`` again from ``strength`` of the way back into
        the noise (image-to-image on the same components, known content blended back)."""
        from diffusers import AutoPipelineForImage2Image

        self.fresh_scheduler()
        pipe = AutoPipelineForImage2Image.from_pipe(self.engine.pipe)
        pipe.set_progress_bar_config(disable=True)
        known = latents.detach().clone()
        noise = torch.randn(known.shape, generator=torch.Generator().manual_seed(seed),
                            dtype=known.dtype)
        request = self.request
        return pipe(**prompt_kwargs, image=known, strength=strength,
                    num_inference_steps=request.steps, guidance_scale=request.guidance,
                    generator=torch.Generator().manual_seed(seed), output_type="latent",
                    callback_on_step_end=self._adapter(KeepKnown(known, noise, mask))).images

    def img2img(self, prompt_kwargs: dict, image, strength: float, steps: int, generator,
                callback=None) -> list:
        """Image-to-image on the same components: ``image`` (pictures, or latents with the
        VAE's channels) painted again from ``strength`` of the way back into the noise."""
        from diffusers import AutoPipelineForImage2Image

        self.fresh_scheduler()
        try:
            pipe = AutoPipelineForImage2Image.from_pipe(self.engine.pipe)
        except (ValueError, KeyError) as error:
            raise HuajiaError(f"{type(self.engine.pipe).__name__} has no image-to-image "
                              f"pipeline for the hires fix or edits ({error})") from None
        pipe.set_progress_bar_config(disable=True)
        if torch.is_tensor(image):
            image = image.to(self.engine.pipe.vae.dtype)
        images = pipe(**prompt_kwargs, image=image, strength=strength, num_inference_steps=steps,
                      guidance_scale=self.request.guidance, generator=generator, output_type="pt",
                      callback_on_step_end=self._adapter(callback)).images
        return self._pictures(images)

    def encode_caption(self, caption: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(1, window, D) embeddings of one caption (its first chunk) and its pooled vector."""
        pipe = self.engine.pipe
        encoded, _ = encode_weighted(pipe, caption, "")
        return encoded.prompt_embeds[:, :pipe.tokenizer.model_max_length], encoded.pooled

    def decode(self, latents: torch.Tensor) -> Image.Image:
        vae = self.engine.pipe.vae
        with torch.no_grad():
            pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
        if not torch.isfinite(pixels[:1]).all():
            raise self._not_finite("in the VAE's decode")
        return to_pil(pixels[:1])[0]

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
            adapter(self.engine.pipe, index, timestep, {"latents": latents})

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
        vae = self.engine.pipe.vae
        with torch.no_grad():
            latents = vae.encode(to_tensor([image]).to(vae.device, vae.dtype))
        return latents.latent_dist.mode() * vae.config.scaling_factor

    @property
    def latent_scale(self) -> int:
        return int(self.engine.pipe.vae_scale_factor)


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


def _tensor_type(output_type: str) -> str:
    """The pipeline's output type: pictures come back as tensors so NaN can be seen."""
    return "pt" if output_type == "pil" else output_type


def _adapter(callback: StepCallback | None, cutoff: CfgCutoff | None = None, *,
             on_not_finite: Callable[[str], Exception]):
    """A diffusers ``callback_on_step_end`` that stops the run at the first step whose latents
    are not finite, shows ``callback`` a ``DenoiseStep`` and stops guidance at the cutoff."""

    def step_end(pipe, index, timestep, kwargs):
        if not torch.isfinite(kwargs["latents"]).all():
            raise on_not_finite(f"at step {index + 1} of {pipe.num_timesteps}")
        if callback is not None:
            step = DenoiseStep(index, pipe.num_timesteps, kwargs["latents"], pipe.scheduler)
            callback(step)
            kwargs["latents"] = step.latents
            if step.interrupted:
                pipe._interrupt = True
        if cutoff is not None:
            cutoff(pipe, index, kwargs)
        return kwargs

    return step_end
