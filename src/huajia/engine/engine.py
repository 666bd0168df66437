"""The ``Engine``: one loaded pipeline, and ``generate(GenerationRequest) → GenerationResult``.

It drives any diffusers text-to-image pipeline through its own ``__call__``. huajia adds what
that call lacks: A1111 weights and long prompts (as embeddings), style presets, per-image seeds
(same seed, same picture), scheduler choice by name, LoRAs, infotext and warnings about words the
model never learned. The Engine alone touches the pipeline: everything a run changes on it is set
and restored by ``engine.session(request)`` (see ``session``).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from huajia.engine import families, loading
from huajia.engine.edits import FEATHER_PX, composite, edit_size, read_mask
from huajia.engine.expansion import PromptExpander
from huajia.engine.facts import ModelFacts
from huajia.engine.infotext import format_infotext
from huajia.engine.lora import apply_loras, apply_new_words, lora_hash, lora_name, read_new_words
from huajia.engine.parallel import SplitBatch
from huajia.engine.prompt_weights import plain_text
from huajia.engine.request import GenerationRequest, GenerationResult, LoraSpec
from huajia.engine.schedulers import sampler_label
from huajia.engine.session import ModelHook, Session
from huajia.engine.styles import Style, get_style
from huajia.engine.t5_weights import always_own_encoding
from huajia.engine.upscalers import Upscalers, label, sharpen
from huajia.errors import HuajiaError

ProgressCallback = Callable[[int, int], None]  # (steps done, total steps)
Vocabulary = Callable[[str], Sequence[str]]  # prompt text → the words the model never learned
Rewording = Callable[[str], "str | None"]  # a user's prompt → the model's own words, or None


def batch_key(request: GenerationRequest) -> tuple:
    """Requests with equal keys can share one pipeline call."""
    return (request.steps, request.guidance, request.true_guidance, request.width, request.height,
            request.scheduler, request.loras, request.guidance_rescale, request.cfg_cutoff,
            request.hires_scale, request.hires_upscaler, request.hires_steps, request.hires_denoise)


@dataclass(frozen=True)
class Expanded:
    """One picture's request after prompt expansion, and what it was expanded from."""

    request: GenerationRequest  # n=1, its own seed, the painted prompt
    template: str | None  # the prompt as written (None: not expanded)
    mode: str
    warnings: tuple[str, ...] = ()


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
        if isinstance(tensors[0], list):  # Z-Image's embeddings: a (tokens, D) tensor per row
            stacked[key] = [row for rows, n in zip(tensors, counts, strict=True)
                            for _ in range(n) for row in rows]
            continue
        if torch.is_tensor(tensors[0]) and tensors[0].ndim == 4:  # HiDream's Llama layers:
            longest = max(t.shape[2] for t in tensors)  # (layers, batch, tokens, D)
            stacked[key] = torch.cat([torch.cat(
                [t, t[:, :, -1:].expand(-1, -1, longest - t.shape[2], -1)], dim=2).expand(
                -1, n, -1, -1) for t, n in zip(tensors, counts, strict=True)], dim=1)
            continue
        if not torch.is_tensor(tensors[0]):  # e.g. PixArt's negative_prompt=None beside embeds
            stacked[key] = tensors[0]
            continue
        sequence = tensors[0].ndim == 3 or key.endswith("mask")
        longest = max(t.shape[1] for t in tensors) if sequence else 0
        rows = []
        for tensor, n in zip(tensors, counts, strict=True):
            if sequence and tensor.shape[1] < longest:  # pad short prompts' chunks
                extra = longest - tensor.shape[1]
                pad = tensor.new_zeros(1, extra) if tensor.ndim == 2 else \
                    tensor[:, -1:].expand(-1, extra, -1)  # masks: hidden; embeddings: padding
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

    ``Engine("embedded")``, ``Engine("path/to/diffusers-folder")``, a hub id, a checkpoint
    file (``.safetensors``, ``.ckpt``, ``.gguf``; ``load.model_config`` for what it lacks), or
    an already built pipeline: ``Engine(pipe=pipe)`` / ``Engine.from_pipe(pipe)`` (as diffusers'
    ``from_pipe``, the components are shared, not copied). ``vocabulary`` checks each prompt
    for words the model never learned (e.g. ``huajia.world.parser.unknown_words`` for models
    trained on the shapes world); they come back as warnings. ``reword`` says a prompt in the
    words a huajia-trained model learned (``huajia.world.reading.reword``), unless the request
    is ``verbatim``. ``load`` (``LoadOptions``):
    precision, quantization, offloading, VAE tiling and slicing, attention backend, step cache
    (docs/loading.md); ``load_record`` says how the model runs.
    """

    def __init__(self, model: str = loading.EMBEDDED, *, device: str | None = None,
                 pipe=None, vocabulary: Vocabulary | None = None, reword: Rewording | None = None,
                 expander: PromptExpander | None = None, split_batch: bool = True,
                 trace: bool = True, trace_after: int = 40, family: str | None = None,
                 load: loading.LoadOptions | None = None):
        self.load = load or loading.LoadOptions()
        if pipe is None:
            self.source = loading.resolve_model(model)
            self.device, self.dtype = loading.pick_device(device, self.load.dtype)
            self.pipe = loading.load_pipeline(self.source, self.device, self.dtype, self.load,
                                              family)
        else:
            loading.check_built(self.load)
            name = model if model != loading.EMBEDDED else \
                getattr(pipe, "name_or_path", None) or "custom"
            self.source = loading.ModelSource(name, "", False, False)
            self.device, self.dtype = pipe.device, pipe.dtype
            self.pipe = pipe
        self.family = families.detect(self.pipe, family)
        # how it runs (precision, quantization, offload, VAE tiling, attention, step cache)
        self.load_record = loading.configure(self.pipe, self.family, self.load,
                                             torch.device(self.device), self.source)
        # a scheduler built in memory (not read from a folder) has no _class_name in its config
        self.base_scheduler_config = {"_class_name": type(self.pipe.scheduler).__name__,
                                      **self.pipe.scheduler.config}
        self.model_hash = loading.model_hash(self.source, self.pipe)
        self.vocabulary = vocabulary
        self.reword = reword if self.source.huajia_trained else None
        self.expander = expander or PromptExpander()
        self.upscalers = Upscalers(self.device)
        # on CPU the denoiser runs as a frozen trace and its batch as parts on the cores
        # (``parallel``); GPUs batch natively
        cores = torch.get_num_threads() if split_batch else 1
        on_cpu = torch.device(self.device).type == "cpu"
        trace = trace and self.load_record["quantize"] == "none"  # no traces of quantized weights
        self.split = SplitBatch(min(cores, 4), trace=trace, state=lambda: self.active_loras,
                                trace_after=trace_after) \
            if on_cpu and (cores > 1 or trace) and self.family.cpu_split else None
        self.loaded_loras: tuple = ()
        self.active_loras: tuple = ()
        self.new_words: tuple[str, ...] = ()
        self.lora_words: dict[str, tuple | None] = {}  # per LoRA path, read once like its weights
        self.lora_hashes: dict[str, str] = {}

    @classmethod
    def from_pipe(cls, pipe, *, name: str | None = None, vocabulary: Vocabulary | None = None,
                  expander: PromptExpander | None = None) -> Engine:
        return cls(name or getattr(pipe, "name_or_path", None) or "custom", pipe=pipe,
                   vocabulary=vocabulary, expander=expander)

    def warm_up(self) -> None:
        """Two denoising steps through every component (and the denoiser's trace made now),
        so the first real request does not pay the set-up. Two, not one: a flow schedule
        stretched to a terminal sigma (Qwen-Image's ``shift_terminal``) divides by zero in a
        single step and paints NaN."""
        if self.split is not None and self.split.traces is not None:
            self.split.traces.trace_next()
        side = min(self.native_size, 256) // self.family.size_multiple(self.pipe) * \
            self.family.size_multiple(self.pipe)
        self.generate(GenerationRequest("warm-up", seed=0, steps=2, width=max(side, 64),
                                        height=max(side, 64)))

    @property
    def native_size(self) -> int:
        return self.family.native_size(self.pipe)

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.family.denoiser(self.pipe)

    def unknown_words(self, prompt: str) -> tuple[str, ...]:
        """Words outside what the model learned (as its ``vocabulary`` check tells)."""
        return tuple(self.vocabulary(plain_text(prompt))) if self.vocabulary else ()

    def session(self, request: GenerationRequest, hooks: Sequence[ModelHook] = ()) -> Session:
        """``with engine.session(request) as run:`` — the request's LoRAs and ``hooks`` are on,
        each denoising run gets a fresh scheduler; all of it is undone on exit."""
        return Session(self, request, hooks)

    @functools.cached_property
    def facts(self) -> ModelFacts:
        """Name, hash, sizes, tokenizer and the family's description (with how the model
        runs: ``load_record``): what a front end needs to check and bound a request and to
        describe the model."""
        return ModelFacts(self.source.name, self.model_hash, self.native_size,
                          self.family.counting_tokenizer(self.pipe),
                          self.family.size_multiple(self.pipe),
                          {**self.family.describe(self.pipe), "loading": dict(self.load_record)})

    def base_size(self, request: GenerationRequest) -> tuple[int, int]:
        return self.facts.base_size(request)

    def size_of(self, request: GenerationRequest) -> tuple[int, int]:
        return self.facts.size_of(request)

    def hires_size(self, request: GenerationRequest) -> tuple[int, int]:
        return self.facts.hires_size(request)

    def paint_size(self, request: GenerationRequest) -> tuple[int, int]:
        return self.facts.paint_size(request)

    def finish(self, image: Image.Image, request: GenerationRequest) -> Image.Image:
        """A painted picture at the size ``request`` asked for (upscaled when painted smaller),
        sharpened if asked."""
        size = self.size_of(request)
        if image.size != size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        return sharpen(image, request.sharpen)

    def generate(self, request: GenerationRequest,
                 on_step: ProgressCallback | None = None) -> GenerationResult:
        return self.generate_batch([request], on_step)[0]

    def generate_batch(self, requests: Sequence[GenerationRequest],
                       on_step: ProgressCallback | None = None) -> list[GenerationResult]:
        """Several requests in one pipeline call (micro-batching). They must agree on
        everything but prompt, negative prompt, seed, n and style (see ``batch_key``).
        Requests that expand their prompt paint one expansion per picture."""
        first = requests[0]
        if any(batch_key(r) != batch_key(first) for r in requests):
            raise HuajiaError("requests in one batch must share steps, guidance, size, "
                              "scheduler, LoRAs and hires fix")
        if all(r.expand == "none" for r in requests):
            return self._paint_batch([Expanded(r, None, "none") for r in requests], on_step)
        plans = [self.expand(r) for r in requests]
        painted = self._paint_batch([e for plan in plans for e in plan], on_step)
        results = []
        for plan in plans:
            mine, painted = painted[:len(plan)], painted[len(plan):]
            results.append(GenerationResult(
                tuple(i for r in mine for i in r.images), tuple(s for r in mine for s in r.seeds),
                tuple(t for r in mine for t in r.infotexts), tuple(m for r in mine for m in r.metadata),
                dict(mine[0].timings), tuple(dict.fromkeys(w for r in mine for w in r.warnings))))
        return results

    def expand(self, request: GenerationRequest) -> list[Expanded]:
        """``request`` as the pictures it paints, each with its prompt expanded from its own seed
        (the same seed gives the same prompt); one entry with the request itself when it does
        not expand. An expansion that is not a paintable prompt falls back to the original."""
        if request.expand == "none":
            return [Expanded(request, None, "none")]
        self.expander.check(request.expand, request.prompt)
        out = []
        for seed in self._seeds(request):
            expansion = self.expander.expand(request.expand, request.prompt, seed)
            warnings = expansion.warnings
            try:
                single = replace(request, prompt=expansion.prompt, n=1, seed=seed, expand="none")
            except HuajiaError as error:
                warnings += (f"the expanded prompt could not be painted ({error}); painted the "
                             "prompt as written",)
                single = replace(request, n=1, seed=seed, expand="none")
            out.append(Expanded(single, request.prompt, request.expand, warnings))
        return out

    def _paint_batch(self, items: list[Expanded], on_step: ProgressCallback | None) -> list[GenerationResult]:
        start = time.perf_counter()
        requests = [item.request for item in items]
        first = requests[0]
        size = self.paint_size(first)
        self.family.check_size(self.pipe, size)
        if first.hires_scale > 1:  # the second pass's size too, before the first is painted
            self.family.check_size(self.pipe, self.hires_size(first))
        progress = _ProgressCallback(on_step) if on_step else None
        with self.session(first) as run:
            encode_start = time.perf_counter()
            prepared = [self.prepare(r) for r in requests]
            if len({frozenset(p.kwargs) for p in prepared}) > 1:  # weighted beside plain
                with always_own_encoding():  # all as embeddings
                    prepared = [replace(p, kwargs=self.prompt_kwargs(p.prompt, p.negative))
                                for p in prepared]
            kwargs = _stack([p.kwargs for p in prepared], [r.n for r in requests])
            encode_s = time.perf_counter() - encode_start
            seeds = [s for p in prepared for s in p.seeds]
            generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
            denoise_start = time.perf_counter()
            if first.hires_scale > 1:
                latents = run.denoise(kwargs, generators, size, progress, output_type="latent")
                painted = self._hires_pass(run, first, kwargs, latents, seeds, progress)
            else:
                painted = run.denoise(kwargs, generators, size, progress)
        images = [self.finish(image, r) for r, image in zip(
            [r for r in requests for _ in range(r.n)], painted, strict=True)]
        timings = {"encode_s": encode_s, "denoise_decode_s": time.perf_counter() - denoise_start,
                   "total_s": time.perf_counter() - start, "batch_images": len(generators)}
        results = []
        for item, prep in zip(items, prepared, strict=True):
            request = item.request
            mine, images = images[:request.n], images[request.n:]
            fields = {**self.infotext_fields(request, size, self.sampler_for(first), item),
                      **run.plan.fields}
            results.append(self._result(request, prep, mine, fields, dict(timings),
                                        item.warnings + run.plan.notes))
        return results

    def _result(self, request: GenerationRequest, prep: PreparedPrompt, images: list,
                fields: dict, timings: dict, warnings: tuple[str, ...] = ()) -> GenerationResult:
        """The result of ``request``'s pictures: one infotext and metadata record per seed."""
        return GenerationResult(
            tuple(images), tuple(prep.seeds),
            tuple(self.infotext(request, prep.prompt, prep.negative, {**fields, "Seed": s})
                  for s in prep.seeds),
            tuple({**fields, "Seed": s, "Prompt": prep.prompt, "Negative prompt": prep.negative}
                  for s in prep.seeds),
            timings, warnings + prep.warnings)

    def edit(self, request: GenerationRequest, image: Image.Image, mask: Image.Image | None = None,
             *, strength: float = 1.0) -> GenerationResult:
        """Masked inpainting with the same model: the masked area (white, or transparent; see
        ``edits``) painted again from ``strength`` of the way back into the noise, the rest kept
        exactly. ``request.width``/``height`` resize the picture first."""
        area = read_mask(image, mask)
        return self._repaint_picture(request, image, area, strength, keep_outside=True)

    def vary(self, request: GenerationRequest, image: Image.Image, *,
             strength: float = 0.6) -> GenerationResult:
        """Variations of a picture: all of it painted again from ``strength`` of the way back."""
        area = np.ones((image.height, image.width), dtype=np.float32)
        return self._repaint_picture(request, image, area, strength, keep_outside=False)

    def _repaint_picture(self, request: GenerationRequest, image: Image.Image, area: np.ndarray,
                         strength: float, keep_outside: bool) -> GenerationResult:
        """Each seed's picture painted again: a masked edit through the family's inpainting
        pipeline (or huajia's partial denoise), a variation through its image-to-image one."""
        if not 0 < strength <= 1:
            raise HuajiaError(f"strength={strength} is out of range; use above 0 up to 1")
        if int(request.steps * strength) < 1:
            raise HuajiaError(f"strength={strength} of {request.steps} steps paints no step; "
                              f"use more steps or a higher strength")
        start = time.perf_counter()
        asked = (request.width, request.height) if request.width else None
        size = edit_size(image, asked, self.family.size_multiple(self.pipe))
        self.family.check_size(self.pipe, size)
        picture = image.convert("RGB")
        if picture.size != size:
            picture = picture.resize(size, Image.Resampling.LANCZOS)
            area = np.asarray(Image.fromarray(area * 255).convert("L").resize(size), np.float32) / 255.0
            area = (area > 0.5).astype(np.float32)
        with self.session(request) as run:
            prep = self.prepare(request)
            images = []
            for seed in prep.seeds:
                generator = torch.Generator(device="cpu").manual_seed(seed)
                if keep_outside:
                    painted = run.inpaint(prep.kwargs, picture, area, strength, generator)
                    images.append(composite(painted, picture, area))
                else:
                    images += run.img2img(prep.kwargs, [picture], strength, request.steps,
                                          [generator])
        images = [sharpen(i, request.sharpen) for i in images]
        fields = {**self.infotext_fields(request, size, self.sampler_for(request)), **run.plan.fields}
        fields.update({"Denoising strength": strength,
                       **({"Mask blur": FEATHER_PX} if keep_outside else {})})
        return self._result(request, prep, images, fields, {"total_s": time.perf_counter() - start},
                            run.plan.notes)

    def hires_fix(self, image: Image.Image, request: GenerationRequest, seed: int) -> Image.Image:
        """The hires fix on an already painted picture (the thinking loop's result)."""
        with self.session(request) as run:
            prep = self.prepare(request)
            return self._hires_pass(run, request, prep.kwargs, run.encode_image(image), [seed])[0]

    def _hires_pass(self, run: Session, request: GenerationRequest, kwargs: dict,
                    latents: torch.Tensor, seeds: list[int], progress=None) -> list[Image.Image]:
        """A1111's hires fix: the first pass's pictures upscaled (in latent space, the
        session's unpacked latents, or decoded and upscaled by Lanczos or a model file), then
        painted again at the new size (in the family's multiples, ``hires_size``) from
        ``hires_denoise`` of the way back into the noise, with each picture's own seed."""
        target = self.hires_size(request)
        steps = request.hires_steps or request.steps
        if request.hires_upscaler.lower() == "latent":
            scale = run.latent_scale
            start = torch.nn.functional.interpolate(
                latents, size=(target[1] // scale, target[0] // scale), mode="bilinear")
        else:
            start = [self.upscalers.upscale(run.decode(latents[i:i + 1]), target, request.hires_upscaler)
                     for i in range(len(latents))]
        if int(steps * request.hires_denoise) < 1:  # no step to paint: the upscaled pictures
            return [run.decode(start[i:i + 1]) for i in range(len(start))] if torch.is_tensor(start) \
                else start
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        return run.img2img(kwargs, start, request.hires_denoise, steps, generators, progress)

    def activate_loras(self, loras: tuple[LoraSpec, ...]) -> None:
        """Make ``loras`` the active LoRAs, with any new words they bring (files are loaded
        once and kept; only the active set and scales change). Sessions call this."""
        if loras == self.active_loras:
            return
        self.loaded_loras = apply_loras(self.pipe, loras, self.loaded_loras, self.family)
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
        prompt, warnings = self._own_words(request)
        prompt, negative = get_style(request.style).apply(prompt, request.negative_prompt)
        if request.style_raw:
            prompt, negative = Style("raw", request.style_raw).apply(prompt, negative)
        unknown = self.unknown_words(prompt)
        if unknown:
            warnings.append("the model never learned " + ", ".join(f"'{w}'" for w in unknown)
                            + "; those words will have little or no effect")
        warnings += self.family.prompt_notes(prompt, negative)
        return PreparedPrompt(prompt, negative, self._seeds(request),
                              self.prompt_kwargs(prompt, negative), tuple(warnings))

    def _own_words(self, request: GenerationRequest) -> tuple[str, list[str]]:
        """The prompt in the words the model learned, when it reads the whole prompt and the
        request is not ``verbatim`` (weighted or BREAK prompts are painted as written)."""
        if self.reword is None or request.verbatim or plain_text(request.prompt) != request.prompt:
            return request.prompt, []
        words = self.reword(request.prompt)
        if words is None:
            return request.prompt, []
        return words, [f"painted as {words!r}, the model's own words for the prompt "
                       "(verbatim: paint it as written)"]

    def _seeds(self, request: GenerationRequest) -> list[int]:
        base = request.seed if request.seed is not None else self.prepare_seed()
        return [base + i for i in range(request.n)]

    @staticmethod
    def prepare_seed() -> int:
        """A random seed for a request that left it open (it is recorded in the result)."""
        return random.randrange(2**32)

    def sampler_for(self, request: GenerationRequest) -> str:
        """The A1111 sampler label of the scheduler ``request`` paints with."""
        return sampler_label(request.scheduler, self.base_scheduler_config)

    def prompt_kwargs(self, prompt: str, negative: str) -> dict:
        """What the pipeline takes for ``prompt`` and ``negative``: embeddings with A1111
        weights where the family applies them, else the strings its own encoder takes."""
        return self.family.prompt_kwargs(self.pipe, prompt, negative, self.dtype)

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
                        sampler: str, expanded: Expanded | None = None) -> dict:
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
        if request.hires_scale > 1:  # A1111's hires-fix keys, as its PNG Info reads them
            fields["Hires upscale"] = f"{request.hires_scale:g}"
            if request.hires_steps:
                fields["Hires steps"] = request.hires_steps
            fields["Hires upscaler"] = label(request.hires_upscaler)
            fields["Denoising strength"] = request.hires_denoise
            if final != self.hires_size(request):
                fields["Hires resize"] = f"{final[0]}x{final[1]}"
        elif final != tuple(size):  # painted at the native size, then upscaled (A1111's keys)
            fields["Hires resize"] = f"{final[0]}x{final[1]}"
            fields["Hires upscaler"] = request.upscaler.capitalize()
            fields["Denoising strength"] = 0
        if request.sharpen:
            fields["Sharpen"] = request.sharpen
        if expanded is not None and expanded.template is not None:
            # the prompt as written, under the key A1111's Dynamic Prompts extension uses
            fields["Template"] = expanded.template
            fields["Prompt expansion"] = expanded.mode
        if request.style != "none":
            fields["Style"] = request.style
        if request.guidance_rescale:
            fields["CFG rescale"] = request.guidance_rescale
        if request.cfg_cutoff < 1:
            fields["CFG cutoff"] = request.cfg_cutoff
        if request.loras:
            # names, not paths: a server's pictures must not reveal its folders; the
            # <lora:name:scale> tags go in the prompt (``infotext``), as A1111 applies them
            fields["Lora hashes"] = ", ".join(f"{lora_name(lora.path)}: {self.lora_hash(lora)}"
                                              for lora in request.loras)
        fields.update(loading.infotext_fields(self.load_record))
        fields["Version"] = f"huajia {__version__}"
        return fields
