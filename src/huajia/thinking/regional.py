"""Regional prompting through the pipeline's own UNet call (MultiDiffusion-style blending).

Two torch forward hooks on the pipeline's denoiser turn each classifier-free-guidance call
``unet([uncond, cond])`` into one batched call over ``[uncond, cond, region_1 … region_R]``
(each region with its own sub-caption), then fold the region predictions back into the
conditional one under soft masks. The pipeline's code is untouched: it still sees a UNet that
takes and returns a 2B batch. The hooks also remember the last input and guided prediction, so a
pause can decode the x0-prediction without another network call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from huajia.thinking.plan import Box


def soft_mask(box: Box, height: int, width: int, feather: float = 0.08) -> torch.Tensor:
    """(1, 1, H, W) mask: 1 inside ``box``, fading to 0 over ``feather`` of the canvas."""
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    x0, y0, x1, y1 = box

    def ramp(v: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        inside_lo = ((v - lo) / feather + 0.5).clamp(0, 1) if lo > 0 else torch.ones_like(v)
        inside_hi = ((hi - v) / feather + 0.5).clamp(0, 1) if hi < 1 else torch.ones_like(v)
        return inside_lo * inside_hi

    return (ramp(ys, y0, y1)[:, None] * ramp(xs, x0, x1)[None, :])[None, None]


@dataclass
class RegionState:
    """What the hooks need, and what they leave for the thinking loop."""

    embeds: torch.Tensor | None  # (R, L, D) region sub-caption embeddings (None: no UNet hooks)
    masks: torch.Tensor  # (R, 1, h, w) soft masks at latent resolution
    strength: torch.Tensor  # (R,) how much each region's prompt replaces the global one
    boost: torch.Tensor  # (R,) extra guidance inside a region (0: none)
    pooled: torch.Tensor | None = None  # (R, D2) for SDXL-style added conditions
    lengths: torch.Tensor | None = None  # (R,) tokens of each sub-caption (masked text encoders)
    guidance_scale: float = 5.0
    calls: int = 0  # network evaluations per image so far
    distinct_regions: int = 0  # regions with a sub-caption of their own (each costs a call)
    last_input: torch.Tensor | None = None  # (B, C, h, w) latents the UNet last saw
    last_timestep: torch.Tensor | None = None
    last_guided: torch.Tensor | None = None  # (B, C, h, w) guided prediction
    _batch: int = field(default=0, repr=False)
    _own: list[int] = field(default_factory=list, repr=False)  # regions needing their own call


class RegionalHooks:
    """A model hook (``engine.session``'s ``ModelHook``): ``attach(unet)`` installs the two
    forward hooks, ``close()`` removes them."""

    def __init__(self, state: RegionState):
        self.state = state
        self._handles: list = []

    def attach(self, unet: torch.nn.Module) -> None:
        self._handles = [
            unet.register_forward_pre_hook(self._expand, with_kwargs=True),
            unet.register_forward_hook(self._fold, with_kwargs=True),
        ]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _expand(self, module, args, kwargs):
        state = self.state
        name = "sample" if "sample" in kwargs else "hidden_states"  # UNet or DiT
        sample = args[0] if args else kwargs[name]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        hidden = kwargs["encoder_hidden_states"]
        batch = sample.shape[0] // 2
        state._batch = batch
        if batch == 0:
            state.calls += 2
            return None
        cond = sample[batch:]
        state.last_input, state.last_timestep = cond.detach(), timestep
        # dormant regions (strength 0) and those repeating the prompt need no call of their own
        distinct = _own_regions(state.embeds, hidden[batch:batch + 1])
        state.distinct_regions = len(distinct)
        state._own = [r for r in distinct if float(state.strength[r]) > 0]
        regions = len(state._own)
        if regions == 0:
            state.calls += 2
            return None
        extra = cond.repeat(regions, 1, 1, 1)  # (R*B, C, h, w), region-major
        embeds = state.embeds[state._own].to(hidden.dtype).repeat_interleave(batch, dim=0)
        kwargs = dict(kwargs)
        kwargs["encoder_hidden_states"] = torch.cat([hidden, _pad_tokens(embeds, hidden)], 0)
        if kwargs.get("encoder_attention_mask") is not None:  # PixArt-Σ, Sana: mask the padding
            kwargs["encoder_attention_mask"] = _extend_mask(
                kwargs["encoder_attention_mask"], state.lengths, state._own, batch)
        added = kwargs.get("added_cond_kwargs")
        if added and state.pooled is not None:
            pooled = state.pooled[state._own].to(hidden.dtype)
            kwargs["added_cond_kwargs"] = {
                "text_embeds": torch.cat([added["text_embeds"],
                                          pooled.repeat_interleave(batch, 0)]),
                "time_ids": torch.cat([added["time_ids"], added["time_ids"][batch:].repeat(regions, 1)]),
            }
        new_sample = torch.cat([sample, extra], 0)
        if torch.is_tensor(timestep) and timestep.ndim > 0:
            timestep = torch.cat([timestep, timestep[batch:].repeat(regions)])
        state.calls += 2 + regions
        if len(args) > 1:  # sample and timestep by position (a UNet)
            args = (new_sample, timestep, *args[2:])
        else:  # the sample by position or keyword, the timestep by keyword (a DiT)
            kwargs["timestep"] = timestep
            args, kwargs = (((new_sample,), kwargs) if args
                            else ((), {**kwargs, name: new_sample}))
        return args, kwargs

    def _fold(self, module, args, kwargs, output):
        state = self.state
        tensor = output[0] if isinstance(output, tuple) else output.sample
        batch = state._batch
        uncond, cond = tensor[:batch], tensor[batch:2 * batch]
        # (R, B, C, h, w): a region whose sub-caption is the prompt itself reuses cond
        regions = cond[None].repeat(state.embeds.shape[0], 1, 1, 1, 1)
        if state._own:
            regions[state._own] = tensor[2 * batch:].view(-1, *cond.shape)
        masks = state.masks.to(cond.dtype)[:, None]  # (R, 1, 1, h, w)
        weights = masks * state.strength.to(cond.dtype).view(-1, 1, 1, 1, 1)
        total = weights.sum(0).clamp(min=1.0)  # overlapping regions share, never exceed 1
        blended = cond * (1 - weights.sum(0) / total) + (weights * regions).sum(0) / total
        boost = 1 + (masks * state.boost.to(cond.dtype).view(-1, 1, 1, 1, 1)).sum(0)
        blended = uncond + (blended - uncond) * boost
        guided = uncond + state.guidance_scale * (blended - uncond)
        # learned variance (PixArt-Σ) doubles the channels: the prediction is the first half
        state.last_guided = guided[:, :state.last_input.shape[1]].detach()
        folded = torch.cat([uncond, blended], 0)
        if isinstance(output, tuple):
            return (folded, *output[1:])
        output.sample = folded
        return output


class CallCounter:
    """A model hook that only counts network evaluations per image (a forward call on a
    batch of B latents is B of them), for families whose regions do not go through
    ``RegionalHooks``."""

    INPUTS = ("hidden_states", "sample", "x")  # the latents, by the denoiser's keyword

    def __init__(self, state: RegionState):
        self.state = state
        self._handle = None

    def attach(self, denoiser: torch.nn.Module) -> None:
        self._handle = denoiser.register_forward_pre_hook(self._count, with_kwargs=True)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _count(self, module, args, kwargs) -> None:
        latents = args[0] if args else next(
            (kwargs[name] for name in self.INPUTS if kwargs.get(name) is not None), None)
        # Z-Image's transformer takes a list of latents; the others one (B, …) tensor
        self.state.calls += len(latents) if isinstance(latents, (list, tuple)) else \
            (latents.shape[0] if torch.is_tensor(latents) else 1)


def _extend_mask(mask: torch.Tensor, lengths: torch.Tensor | None, own: list[int],
                 batch: int) -> torch.Tensor:
    """The text attention mask (2B, T) with a row per woken region and image: its sub-caption's
    tokens on, the padding after them off."""
    tokens = mask.shape[1]
    if lengths is None:
        rows = torch.ones(len(own), tokens, dtype=mask.dtype)
    else:
        rows = (torch.arange(tokens)[None] < lengths[own][:, None]).to(mask.dtype)
    return torch.cat([mask, rows.repeat_interleave(batch, 0).to(mask.device)])


def _own_regions(embeds: torch.Tensor, cond_hidden: torch.Tensor) -> list[int]:
    """Regions whose sub-caption differs from the prompt (a one-region plan of a simple
    prompt repeats it): only these need a network evaluation of their own."""
    padded = _pad_tokens(embeds.to(cond_hidden.dtype), cond_hidden)
    return [r for r in range(len(embeds))
            if not torch.allclose(padded[r], cond_hidden[0], atol=1e-4)]


def _pad_tokens(embeds: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Region embeddings padded/trimmed to the global prompt's token length."""
    length = like.shape[1]
    if embeds.shape[1] == length:
        return embeds
    if embeds.shape[1] > length:
        return embeds[:, :length]
    return F.pad(embeds, (0, 0, 0, length - embeds.shape[1]))
