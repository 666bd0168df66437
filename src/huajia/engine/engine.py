"""The ``Engine``: one loaded pipeline, and ``generate(GenerationRequest) → GenerationResult``.

It drives any diffusers text-to-image pipeline through its own ``__call__``. huajia adds what
that call lacks: A1111 weights and long prompts (as embeddings), style presets, per-image seeds
(same seed, same picture), scheduler choice by name, LoRAs, infotext and warnings about words the
model never learned. The Engine alone touches the pipeline: everything a run changes on it is set
and restored by ``engine.session(request)`` (see ``session``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from huajia.engine import loading
from huajia.engine.embeddings import encode_weighted
from huajia.engine.infotext import format_infotext
from huajia.engine.lora import apply_loras, apply_new_words, lora_hash, lora_name, read_new_words
from huajia.engine.prompt_weights import plain_text
from huajia.engine.request import GenerationRequest, GenerationResult, LoraSpec
from huajia.engine.schedulers import make_scheduler, sampler_label
from huajia.engine.session import ModelHook, Session
from huajia.engine.styles import get_style
from huajia.errors import HuajiaError

ProgressCallback = Callable[[int, int], None]  # (steps done, total steps)
Vocabulary = Callable[[str], Sequence[str]]  # prompt text → the words the model never learned


def batch_key(request: GenerationRequest) -> tuple:
    """Requests with equal keys can share one pipeline call."""
    return (request.steps, request.guidance, request.width, request.height, request.scheduler,
            request.loras, request.guidance_rescale)


@dataclass(frozen=True)
class PreparedPrompt:
    prompt: str
    negative: str
    seeds: list[int]
    kwargs: dict
    warnings: tuple[str, ...]


def _stack(all_kwargs: list[dict], counts: list[int]) -> dict:
    """Per-request prompt kwargs → one batch with each request's rows repeated n times."""
    first = all_kwargs[0]
    if "prompt" in first:  # string prompts (pipelines without CLIP-style encoders)
        return {key: [kw[key] for kw, n in zip(all_kwargs, counts, strict=True)
                      for _ in range(n)] for key in first}
    stacked = {}
    for key in first:
        tensors = [kw[key] for kw in all_kwargs]
        longest = max(t.shape[1] for t in tensors) if tensors[0].ndim == 3 else 0
        rows = []
        for tensor, n in zip(tensors, counts, strict=True):
            if tensor.ndim == 3 and tensor.shape[1] < longest:  # pad short prompts' chunks
                pad = tensor[:, -1:].expand(-1, longest - tensor.shape[1], -1)
                tensor = torch.cat([tensor, pad], dim=1)
            rows.append(tensor.expand(n, *tensor.shape[1:]))
        stacked[key] = torch.cat(rows)
    return stacked


class _ProgressCallback:
    def __init__(self, on_step: ProgressCallback):
        self.on_step = on_step

    def __call__(self, step) -> None:
        self.on_step(step.done, step.total)


class Engine:
    """Holds one pipeline. Create it once and call ``generate`` many times.

    ``Engine("embedded")``, ``Engine("path/to/diffusers-folder")``, a hub id, or an already
    built pipeline: ``Engine(pipe=pipe)`` / ``Engine.from_pipe(pipe)`` (as diffusers'
    ``from_pipe``, the components are shared, not copied). ``vocabulary`` checks each prompt
    for words the model never learned (e.g. ``huajia.world.parser.unknown_words`` for models
    trained on the shapes world); they come back as warnings.
    """

    def __init__(self, model: str = loading.EMBEDDED, *, device: str | None = None,
                 pipe=None, vocabulary: Vocabulary | None = None):
        if pipe is None:
            self.source = loading.resolve_model(model)
            self.device, self.dtype = loading.pick_device(device)
            self.pipe = loading.load_pipeline(self.source, self.device, self.dtype)
        else:
            name = model if model != loading.EMBEDDED else \
                getattr(pipe, "name_or_path", None) or "custom"
            self.source = loading.ModelSource(name, "", False, False)
            self.device, self.dtype = pipe.device, pipe.dtype
            self.pipe = pipe
        self.base_scheduler_config = dict(self.pipe.scheduler.config)
        self.model_hash = loading.model_hash(self.source, self.pipe)
        self.vocabulary = vocabulary
        self.weighted = hasattr(self.pipe, "tokenizer") and hasattr(self.pipe, "text_encoder")
        self.loaded_loras: tuple = ()
        self.active_loras: tuple = ()
        self.new_words: tuple[str, ...] = ()
        self.lora_words: dict[str, tuple | None] = {}  # per LoRA path, read once like its weights
        self.lora_hashes: dict[str, str] = {}

    @classmethod
    def from_pipe(cls, pipe, *, name: str | None = None,
                  vocabulary: Vocabulary | None = None) -> Engine:
        return cls(name or getattr(pipe, "name_or_path", None) or "custom", pipe=pipe,
                   vocabulary=vocabulary)

    @property
    def native_size(self) -> int:
        return int(self.denoiser.config.sample_size) * int(self.pipe.vae_scale_factor)

    @property
    def denoiser(self) -> torch.nn.Module:
        return getattr(self.pipe, "unet", None) or self.pipe.transformer

    def unknown_words(self, prompt: str) -> tuple[str, ...]:
        """Words outside what the model learned (as its ``vocabulary`` check tells)."""
        return tuple(self.vocabulary(plain_text(prompt))) if self.vocabulary else ()

    def session(self, request: GenerationRequest, hooks: Sequence[ModelHook] = ()) -> Session:
        """``with engine.session(request) as run:`` — the request's LoRAs and ``hooks`` are on,
        each denoising run gets a fresh scheduler; all of it is undone on exit."""
        return Session(self, request, hooks)

    def size_of(self, request: GenerationRequest) -> tuple[int, int]:
        """The size of the pictures ``request`` gets back."""
        return request.width or self.native_size, request.height or self.native_size

    def paint_size(self, request: GenerationRequest) -> tuple[int, int]:
        """The size the model paints at: the asked size or, past the model's native resolution
        (a 128 px model asked for 1024x1024), the same shape scaled down to fit it, to be
        upscaled after (``finish``), since a model paints dots at sizes it never saw."""
        width, height = self.size_of(request)
        native = self.native_size
        if request.upscaler == "none" or max(width, height) <= native:
            return width, height
        scale = native / max(width, height)
        return (max(64, round(width * scale / 8) * 8), max(64, round(height * scale / 8) * 8))

    def finish(self, image: Image.Image, request: GenerationRequest) -> Image.Image:
        """A painted picture at the size ``request`` asked for (upscaled when painted smaller)."""
        size = self.size_of(request)
        if image.size == size:
            return image
        return image.resize(size, Image.Resampling.LANCZOS)

    def generate(self, request: GenerationRequest,
                 on_step: ProgressCallback | None = None) -> GenerationResult:
        return self.generate_batch([request], on_step)[0]

    def generate_batch(self, requests: Sequence[GenerationRequest],
                       on_step: ProgressCallback | None = None) -> list[GenerationResult]:
        """Several requests in one pipeline call (micro-batching). They must agree on
        everything but prompt, negative prompt, seed, n and style (see ``batch_key``)."""
        start = time.perf_counter()
        first = requests[0]
        if any(batch_key(r) != batch_key(first) for r in requests):
            raise HuajiaError("requests in one batch must share steps, guidance, size, "
                              "scheduler and LoRAs")
        size = self.paint_size(first)
        with self.session(first) as run:
            encode_start = time.perf_counter()
            prepared = [self.prepare(r) for r in requests]
            kwargs = _stack([p.kwargs for p in prepared], [r.n for r in requests])
            encode_s = time.perf_counter() - encode_start
            generators = [torch.Generator(device="cpu").manual_seed(s)
                          for p in prepared for s in p.seeds]
            denoise_start = time.perf_counter()
            images = [self.finish(image, first) for image in run.denoise(
                kwargs, generators, size, _ProgressCallback(on_step) if on_step else None)]
        timings = {"encode_s": encode_s, "denoise_decode_s": time.perf_counter() - denoise_start,
                   "total_s": time.perf_counter() - start, "batch_images": len(generators)}
        results = []
        for request, prep in zip(requests, prepared, strict=True):
            mine, images = images[:request.n], images[request.n:]
            fields = self.infotext_fields(request, size, self.sampler_for(first))
            results.append(GenerationResult(
                tuple(mine), tuple(prep.seeds),
                tuple(self.infotext(request, prep.prompt, prep.negative, {**fields, "Seed": s})
                      for s in prep.seeds),
                tuple({**fields, "Seed": s, "Prompt": prep.prompt,
                       "Negative prompt": prep.negative} for s in prep.seeds),
                dict(timings), prep.warnings))
        return results

    def activate_loras(self, loras: tuple[LoraSpec, ...]) -> None:
        """Make ``loras`` the active LoRAs, with any new words they bring (files are loaded
        once and kept; only the active set and scales change). Sessions call this."""
        if loras == self.active_loras:
            return
        self.loaded_loras = apply_loras(self.pipe, loras, self.loaded_loras)
        for spec in loras:
            if spec.path not in self.lora_words:
                self.lora_words[spec.path] = read_new_words(spec.path)
        self.new_words = apply_new_words(self.pipe, [self.lora_words[s.path] for s in loras],
                                         self.new_words)
        self.active_loras = tuple(loras)

    def prepare(self, request: GenerationRequest) -> PreparedPrompt:
        """Style applied, seeds drawn, prompts encoded (with weights), warnings written: what
        every way of painting (plain, batched, thinking) starts from. Call it inside the
        request's session, so its LoRAs' words are known."""
        prompt, negative = get_style(request.style).apply(request.prompt, request.negative_prompt)
        warnings = []
        unknown = self.unknown_words(prompt)
        if unknown:
            warnings.append("the model never learned " + ", ".join(f"'{w}'" for w in unknown)
                            + "; those words will have little or no effect")
        return PreparedPrompt(prompt, negative, self._seeds(request),
                              self.prompt_kwargs(prompt, negative), tuple(warnings))

    def _seeds(self, request: GenerationRequest) -> list[int]:
        base = request.seed if request.seed is not None else self.prepare_seed()
        return [base + i for i in range(request.n)]

    @staticmethod
    def prepare_seed() -> int:
        """A random seed for a request that left it open (it is recorded in the result)."""
        return random.randrange(2**32)

    def sampler_for(self, request: GenerationRequest) -> str:
        """The A1111 sampler label of the scheduler ``request`` paints with."""
        return sampler_label(make_scheduler(request.scheduler, self.base_scheduler_config))

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

    def infotext(self, request: GenerationRequest, prompt: str, negative: str,
                 fields: dict) -> str:
        """A1111's infotext of a picture of ``request``: its LoRAs as ``<lora:name:scale>``
        in the prompt (what A1111 applies when the text is pasted back) and ``fields``."""
        tags = " ".join(f"<lora:{lora_name(lora.path)}:{lora.scale:g}>" for lora in request.loras)
        return format_infotext(f"{prompt} {tags}" if tags else prompt, negative, fields)

    def lora_hash(self, lora: LoraSpec) -> str:
        if lora.path not in self.lora_hashes:
            self.lora_hashes[lora.path] = lora_hash(lora.path)
        return self.lora_hashes[lora.path]

    def infotext_fields(self, request: GenerationRequest, size: tuple[int, int],
                        sampler: str) -> dict:
        from huajia import __version__

        fields: dict[str, object] = {
            "Steps": request.steps,
            "Sampler": sampler,
            "CFG scale": request.guidance,
            "Size": f"{size[0]}x{size[1]}",
            "Model hash": self.model_hash,
            "Model": self.source.name,
        }
        final = self.size_of(request)
        if final != tuple(size):  # painted at the native size, then upscaled (A1111's keys)
            fields["Hires resize"] = f"{final[0]}x{final[1]}"
            fields["Hires upscaler"] = request.upscaler.capitalize()
            fields["Denoising strength"] = 0
        if request.style != "none":
            fields["Style"] = request.style
        if request.guidance_rescale:
            fields["CFG rescale"] = request.guidance_rescale
        if request.loras:
            # names, not paths: a server's pictures must not reveal its folders; the
            # <lora:name:scale> tags go in the prompt (``infotext``), as A1111 applies them
            fields["Lora hashes"] = ", ".join(f"{lora_name(lora.path)}: {self.lora_hash(lora)}"
                                              for lora in request.loras)
        fields["Version"] = f"huajia {__version__}"
        return fields
