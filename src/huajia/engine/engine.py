"""The ``Engine``: one loaded pipeline, and ``generate(GenerationRequest) → GenerationResult``.

It drives any diffusers text-to-image pipeline through its own ``__call__``. huajia adds what
that call lacks: A1111 weights and long prompts (as embeddings), style presets, per-image seeds
(same seed, same picture), scheduler choice by name, LoRAs, infotext and warnings about words the
model never learned.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import torch

from huajia import __version__
from huajia.engine import loading
from huajia.engine.embeddings import encode_weighted
from huajia.engine.infotext import format_infotext
from huajia.engine.lora import apply_loras
from huajia.engine.prompt_weights import plain_text
from huajia.engine.request import GenerationRequest, GenerationResult
from huajia.engine.schedulers import make_scheduler, sampler_label
from huajia.engine.styles import get_style
from huajia.world.parser import parse

StepCallback = Callable[[int, int], None]  # (step done, total steps)


class Engine:
    """Holds one pipeline. Create it once and call ``generate`` many times."""

    def __init__(self, model: str = loading.EMBEDDED, device: str | None = None):
        self.source = loading.resolve_model(model)
        self.device, self.dtype = loading.pick_device(device)
        self.pipe = loading.load_pipeline(self.source, self.device, self.dtype)
        self.base_scheduler_config = dict(self.pipe.scheduler.config)
        self.model_hash = loading.model_hash(self.source, self.pipe)
        self.weighted = hasattr(self.pipe, "tokenizer") and hasattr(self.pipe, "text_encoder")
        self.loras: tuple = ()

    @property
    def native_size(self) -> int:
        denoiser = getattr(self.pipe, "unet", None) or self.pipe.transformer
        return int(denoiser.config.sample_size) * int(self.pipe.vae_scale_factor)

    def unknown_words(self, prompt: str) -> tuple[str, ...]:
        """Words outside what the model learned (the embedded model: the world's vocabulary)."""
        if not self.source.huajia_trained:
            return ()
        return parse(plain_text(prompt)).unparsed

    def generate(self, request: GenerationRequest,
                 on_step: StepCallback | None = None) -> GenerationResult:
        start = time.perf_counter()
        style = get_style(request.style)
        prompt, negative = style.apply(request.prompt, request.negative_prompt)
        warnings = []
        unknown = self.unknown_words(prompt)
        if unknown:
            warnings.append("the model never learned " + ", ".join(f"'{w}'" for w in unknown)
                            + "; those words will have little or no effect")
        self.loras = apply_loras(self.pipe, request.loras, self.loras)
        self.pipe.scheduler = make_scheduler(request.scheduler, self.base_scheduler_config)
        width = request.width or self.native_size
        height = request.height or self.native_size
        seeds = self._seeds(request)
        encode_start = time.perf_counter()
        kwargs = self.prompt_kwargs(prompt, negative)
        encode_s = time.perf_counter() - encode_start
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]

        def step_end(pipe, step, timestep, callback_kwargs):
            if on_step:
                on_step(step + 1, request.steps)
            return callback_kwargs

        denoise_start = time.perf_counter()
        output = self.pipe(
            **kwargs, num_inference_steps=request.steps, guidance_scale=request.guidance,
            guidance_rescale=request.guidance_rescale, width=width, height=height,
            num_images_per_prompt=request.n, generator=generators,
            callback_on_step_end=step_end)
        denoise_s = time.perf_counter() - denoise_start
        fields = self.infotext_fields(request, width, height)
        infotexts = tuple(format_infotext(prompt, negative, {**fields, "Seed": s}) for s in seeds)
        metadata = tuple({**fields, "Seed": s, "Prompt": prompt, "Negative prompt": negative}
                         for s in seeds)
        timings = {"encode_s": encode_s, "denoise_decode_s": denoise_s,
                   "total_s": time.perf_counter() - start}
        return GenerationResult(tuple(output.images), tuple(seeds), infotexts, metadata,
                                timings, tuple(warnings))

    def _seeds(self, request: GenerationRequest) -> list[int]:
        base = request.seed if request.seed is not None else random.randrange(2**32)
        return [base + i for i in range(request.n)]

    def prompt_kwargs(self, prompt: str, negative: str) -> dict:
        if not self.weighted:  # pipelines without a CLIP-style encoder take the strings
            return {"prompt": plain_text(prompt), "negative_prompt": plain_text(negative) or None}
        positive, negative_enc = encode_weighted(self.pipe, prompt, negative)
        kwargs = {"prompt_embeds": positive.prompt_embeds.to(self.dtype),
                  "negative_prompt_embeds": negative_enc.prompt_embeds.to(self.dtype)}
        if positive.pooled is not None:
            kwargs["pooled_prompt_embeds"] = positive.pooled.to(self.dtype)
            kwargs["negative_pooled_prompt_embeds"] = negative_enc.pooled.to(self.dtype)
        return kwargs

    def infotext_fields(self, request: GenerationRequest, width: int, height: int) -> dict:
        fields: dict[str, object] = {
            "Steps": request.steps,
            "Sampler": sampler_label(self.pipe.scheduler),
            "CFG scale": request.guidance,
            "Size": f"{width}x{height}",
            "Model hash": self.model_hash,
            "Model": self.source.name,
        }
        if request.style != "none":
            fields["Style"] = request.style
        if request.guidance_rescale:
            fields["CFG rescale"] = request.guidance_rescale
        if request.loras:
            fields["Lora"] = " ".join(f"{lora.path}:{lora.scale}" for lora in request.loras)
        fields["Version"] = f"huajia {__version__}"
        return fields
