"""The denoiser's call for a caption, as the family's own text-to-image pipeline makes it.

A LoRA trainer needs, per caption, everything the denoiser takes besides the noisy latents and
the time: the text embeddings (CLIP-L/G, T5, ChatGLM, Gemma, Qwen), pooled vectors, SDXL's
added time ids, Flux's position ids and distilled guidance, Qwen-Image's image shapes, masks.
Each pipeline already builds exactly these; rebuilding them per family would be a second copy
of diffusers. So the pipeline is run on the caption at the training size with guidance off
until its denoiser is about to run; a forward pre-hook keeps that call's arguments and stops
the pipeline there. Training then calls the denoiser with the same arguments, its own noisy
latents and time in place (``family.training_latents`` / ``training_time``).

Frozen text encoders: one capture per caption, kept (cached text embeddings). A text-encoder
LoRA: a capture per step with gradients (the pipeline's ``__call__`` without its ``no_grad``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from huajia.engine.request import GenerationRequest

LATENT_KEYS = ("hidden_states", "sample", "x")  # the latent keyword where it is not positional


class _Captured(Exception):  # noqa: N818 - a signal, not an error: the pipeline stops here
    def __init__(self, args: tuple, kwargs: dict):
        super().__init__("denoiser call captured")
        self.args, self.kwargs = args, kwargs


@dataclass
class DenoiserCall:
    """One caption's denoiser arguments (batch 1), latents and time to be replaced."""

    args: tuple
    kwargs: dict

    def run(self, denoiser, latents, time: torch.Tensor):
        """The denoiser on ``latents`` (its input format) at ``time`` (its time input)."""
        args, kwargs = list(self.args), dict(self.kwargs)
        if args:
            args[0] = latents
        else:
            kwargs[next(k for k in LATENT_KEYS if k in kwargs)] = latents
        if len(args) > 1:
            args[1] = time
        else:  # HiDream's transformer names it "timesteps"
            kwargs["timesteps" if "timesteps" in kwargs else "timestep"] = time
        kwargs["return_dict"] = False
        return denoiser(*args, **kwargs)[0]


def capture(pipe, family, caption: str, side: int | tuple[int, int], grad: bool = False,
            guidance: float = 1.0, negative: bool = False) -> DenoiserCall:
    """The denoiser call the pipeline makes for ``caption`` at ``side`` x ``side`` (or a (W, H)
    size) without
    classifier-free guidance (the first step; nothing past it runs). ``grad``: through the
    text encoders; ``guidance``: what a guidance-distilled denoiser (FLUX.1 dev) is given;
    ``negative``: ``caption`` encoded as a negative prompt (CFG's unconditional call)."""
    denoiser = family.denoiser(pipe)
    request = GenerationRequest("guidance off", guidance=guidance, steps=2)  # only its guidance
    prompt = family.unconditional_kwargs(pipe, caption) if negative else {"prompt": caption}
    width, height = (side, side) if isinstance(side, int) else side
    kwargs = {**prompt, "height": height, "width": width, "num_inference_steps": 2,
              "output_type": "latent", "generator": torch.Generator("cpu").manual_seed(0),
              **family.call_plan(pipe, request, has_negative=False).kwargs}

    def stop(_module, args, call_kwargs):
        raise _Captured(args, call_kwargs)

    handle = denoiser.register_forward_pre_hook(stop, with_kwargs=True)
    call = type(pipe).__call__
    call = getattr(call, "__wrapped__", call) if grad else call  # no_grad off for the encoders
    try:
        with family.sized(pipe, (width, height)):
            call(pipe, **kwargs)
    except _Captured as captured:
        return DenoiserCall(tuple(captured.args), dict(captured.kwargs))
    finally:
        handle.remove()
    raise RuntimeError(f"{type(pipe).__name__} never called its {family.denoiser_name}")


class _Unstackable(Exception):  # noqa: N818 - a signal: these calls run one by one
    pass


def stacked(calls: list[DenoiserCall]) -> DenoiserCall | None:
    """One call for a batch of captions' calls: batch-1 tensors concatenated, per-picture
    lists joined, what every call shares (Flux's position ids, switches) kept once; None where
    the calls differ in a way no batch can hold (Qwen-Image's unpadded texts of different
    lengths), and the pictures then run one by one."""
    first = calls[0]
    try:
        args = tuple(_stack([c.args[i] for c in calls]) for i in range(len(first.args)))
        kwargs = {key: _stack([c.kwargs.get(key) for c in calls]) for key in first.kwargs}
    except _Unstackable:
        return None
    return DenoiserCall(args, kwargs)


def _stack(values: list):
    head = values[0]
    if isinstance(head, torch.Tensor):
        if not all(isinstance(v, torch.Tensor) and v.shape == head.shape for v in values):
            raise _Unstackable
        if head.ndim and head.shape[0] == 1:
            return torch.cat(values)  # (1, …) per caption → (B, …)
        if head.ndim <= 2 and all(torch.equal(v, head) for v in values[1:]):
            return head  # shared by the batch (position ids, (tokens, 3))
        raise _Unstackable
    if isinstance(head, dict):
        if not all(isinstance(v, dict) and v.keys() == head.keys() for v in values):
            raise _Unstackable
        return {key: _stack([v[key] for v in values]) for key in head}
    if isinstance(head, list):
        if not all(isinstance(v, list) and len(v) == len(head) for v in values):
            raise _Unstackable
        return [item for v in values for item in v]  # one entry per picture
    if all(v == head for v in values[1:]):
        return head
    raise _Unstackable


class CaptionCalls:
    """Captions' denoiser calls: captured once each where the text encoders are frozen."""

    def __init__(self, pipe, family, side: int | tuple[int, int], grad: bool, guidance: float = 1.0):
        self.pipe, self.family, self.side, self.grad = pipe, family, side, grad
        self.guidance = guidance  # a distilled denoiser's guidance input (1: none)
        self.cache: dict[str, DenoiserCall] = {}

    def __call__(self, caption: str) -> DenoiserCall:
        if self.grad:
            return capture(self.pipe, self.family, caption, self.side, True, self.guidance)
        if caption not in self.cache:
            self.cache[caption] = capture(self.pipe, self.family, caption, self.side, False, self.guidance)
        return self.cache[caption]

    def negative(self, text: str = "") -> DenoiserCall:
        """The call of ``text`` as the negative prompt: classifier-free guidance's other half."""
        key = ("negative", text)
        if key not in self.cache:
            self.cache[key] = capture(self.pipe, self.family, text, self.side, False, self.guidance,
                                      negative=True)
        return self.cache[key]
