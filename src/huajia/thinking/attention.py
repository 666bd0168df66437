"""Regional prompts in an MMDiT's joint attention (after *Regional Prompting for FLUX*,
arXiv 2411.02395), for families whose regions are "joint".

A forward pre-hook on the transformer appends the woken regions' sub-caption tokens after the
prompt's text tokens (the family's ``joint_text``) and passes an attention mask over the joint
sequence: the prompt's text and every image token see each other; region r's tokens see only
themselves and the image tokens inside region r, which see them back. An image token outside
every woken region sees the prompt alone, so a region with strength 0 (dormant) costs nothing
and changes nothing. Only the positive pass gets regions: Flux's true-CFG negative pass (a
second call at the same timestep) is left as it is. Token order is the family's: [text, image]
(Flux, Chroma, Qwen-Image), or [image, text] (SD3).

As *Regional Prompting for FLUX* does, the regions are injected for the first ``region_steps``
of the schedule only (then the prompt alone paints the details), and while they are, each
attention runs twice: under the regions' mask and under the base mask (the prompt alone), the
image tokens' outputs blended ``base_ratio`` of the base's. The paper carries a second, base
stream of hidden states through the network; here the base attention reads the same hidden
states, which costs one extra attention per block, not a second network."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from huajia.thinking.regional import RegionState


@dataclass
class BlendShare:
    """What the hook tells the blending processors about the call under way."""

    ratio: float  # how much of the base attention the image tokens get
    text_first: bool
    base: torch.Tensor | None = None  # the base mask while regions are woken, else None
    image_tokens: int = 0


class JointRegions:
    """A model hook (``engine.session``'s ``ModelHook``) for joint-attention regions.
    ``steps``: the request's; regions are woken for the first ``ceil(region_steps * steps)``
    steps of each denoise (a repaint counts its own)."""

    def __init__(self, state: RegionState, family, captions: list[torch.Tensor], patch: int,
                 steps: int = 0, region_steps: float = 1.0, base_ratio: float = 0.0):
        self.state, self.family, self.captions = state, family, captions  # (1, L_r, D) each
        self.patch = patch  # latent pixels per image token along a side
        self.inject = None if region_steps >= 1 else math.ceil(region_steps * steps)
        self.share = BlendShare(base_ratio, family.text_first)
        self._handle = None
        self._denoiser, self._saved = None, None  # the processors this run replaced
        self._last_timestep: float | None = None
        self.step = 0  # the step of the denoise under way

    def attach(self, denoiser: torch.nn.Module) -> None:
        self._handle = denoiser.register_forward_pre_hook(self._extend, with_kwargs=True)
        self.set_processors(denoiser)

    def set_processors(self, denoiser: torch.nn.Module) -> None:
        """The attention processors this run needs (the family's masked ones, blending ones),
        in place of the denoiser's until ``close``."""
        processors = self.family.mask_processors(denoiser)
        if self.share.ratio > 0:
            processors = {name: BaseBlend(processor, self.share) for name, processor in
                          (processors or denoiser.attn_processors).items()}
        if processors:  # the family's own ignore a mask: set ones that apply it, for this run
            self._denoiser, self._saved = denoiser, denoiser.attn_processors
            denoiser.set_attn_processor(processors)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self._saved is not None:
            self._denoiser.set_attn_processor(self._saved)
            self._denoiser = self._saved = None

    def _count_step(self, timestep: float) -> bool:
        """Advance the step count; True for the second call at one timestep (true CFG's
        negative pass). A timestep above the last one starts a new denoise."""
        last, self._last_timestep = self._last_timestep, timestep
        if last is None or timestep > last:
            self.step = 0
        elif timestep < last:
            self.step += 1
        return timestep == last

    def _extend(self, module, args, kwargs):
        state = self.state
        text = kwargs["encoder_hidden_states"]  # (B, T, D)
        batch = text.shape[0]
        state.calls += batch
        second = self._count_step(float(torch.as_tensor(kwargs["timestep"]).flatten()[0]))
        self.share.base = None
        injected = self.inject is None or self.step < self.inject
        woken = [r for r in range(len(self.captions)) if float(state.strength[r]) > 0]
        if second or not woken or not injected:
            return None
        extra = torch.cat([self.captions[r] for r in woken], 1).to(text.device)
        kwargs = self.family.joint_text(kwargs, extra.expand(batch, -1, -1))
        mask = self.mask(woken, text.shape[1]).to(text.device)
        base = self.mask([], text.shape[1], extra.shape[1]).to(text.device)
        if batch > 1:  # a CFG batch [uncond, cond]: the unconditional half sees no regions
            mask = torch.stack([base] * (batch // 2) + [mask] * (batch - batch // 2))
        else:
            mask = mask[None]
        if self.share.ratio > 0:
            self.share.base, self.share.image_tokens = base[None, None], self._inside([]).shape[1]
        return args, self.family.joint_mask(kwargs, mask[:, None])

    def mask(self, woken: list[int], prompt_tokens: int, unseen: int = 0) -> torch.Tensor:
        """(S, S) bool over the joint sequence, True where a query may attend to a key;
        ``unseen``: region tokens that are there but seen by nothing else (the CFG batch's
        unconditional half)."""
        lengths = [self.captions[r].shape[1] for r in woken] + ([unseen] if unseen else [])
        text_tokens = prompt_tokens + sum(lengths)
        inside = self._inside(woken)  # (R, I)
        image_tokens = inside.shape[1]
        size = text_tokens + image_tokens
        allowed = torch.zeros(size, size, dtype=torch.bool)
        text = slice(0, text_tokens)
        image = slice(text_tokens, size)
        if not self.family.text_first:  # [image, text]
            image, text = slice(0, image_tokens), slice(image_tokens, size)
        t0 = text.start
        allowed[t0:t0 + prompt_tokens, t0:t0 + prompt_tokens] = True
        allowed[t0:t0 + prompt_tokens, image] = True
        allowed[image, t0:t0 + prompt_tokens] = True
        allowed[image, image] = True
        start = t0 + prompt_tokens
        for k, length in enumerate(lengths):
            own = slice(start, start + length)
            allowed[own, own] = True
            if k >= len(woken):
                break
            where = torch.nonzero(inside[k]).flatten() + image.start
            allowed[own.start:own.stop, where] = True
            allowed[where, own.start:own.stop] = True
            start += length
        return allowed

    def _inside(self, woken: list[int]) -> torch.Tensor:
        """(R, I) which image tokens lie in each woken region (its soft mask above one half,
        pooled to the token grid, row by row as the denoiser orders its tokens)."""
        masks = self.state.masks.float().cpu()  # (R, 1, h, w)
        if self.patch > 1:
            masks = F.avg_pool2d(masks, self.patch)
        return masks[woken].flatten(1) > 0.5


class BaseBlend:
    """A family's joint-attention processor, run twice while regions are woken: under the
    regions' mask and under the base mask; the image tokens get ``ratio`` of the base's output
    (the regions' own text tokens keep theirs). Otherwise the processor as it is."""

    def __init__(self, inner, share: BlendShare):
        self.inner, self.share = inner, share
        self.accepts = set(inspect.signature(inner.__call__).parameters)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 image_rotary_emb=None, encoder_hidden_states_mask=None, region_mask=None):
        given = {"encoder_hidden_states": encoder_hidden_states, "attention_mask": attention_mask,
                 "image_rotary_emb": image_rotary_emb, "region_mask": region_mask,
                 "encoder_hidden_states_mask": encoder_hidden_states_mask}
        kwargs = {k: v for k, v in given.items() if k in self.accepts}
        out = self.inner(attn, hidden_states, **kwargs)
        key = "region_mask" if region_mask is not None else "attention_mask"
        regional, share = given[key], self.share
        tokens = hidden_states.shape[1] + (0 if encoder_hidden_states is None
                                           else encoder_hidden_states.shape[1])
        if share.base is None or regional is None or regional.shape[-1] != tokens:
            return out  # no regions now, or an image-only attention (SD3.5's second)
        base = self.inner(attn, hidden_states, **{**kwargs, key: share.base})
        if isinstance(out, tuple):  # (image, text): the image stream
            return (torch.lerp(out[0], base[0], share.ratio), *out[1:])
        if encoder_hidden_states is not None:  # the image alone
            return torch.lerp(out, base, share.ratio)
        # one joint sequence (a single-stream block): its image tokens
        image = slice(tokens - share.image_tokens, tokens) if share.text_first else \
            slice(0, share.image_tokens)
        blended = out.clone()
        blended[:, image] = torch.lerp(out[:, image], base[:, image], share.ratio)
        return blended
