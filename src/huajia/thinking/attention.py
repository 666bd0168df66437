"""Regional prompts in an MMDiT's joint attention (after *Regional Prompting for FLUX*,
arXiv 2411.02395), for families whose regions are "joint".

A forward pre-hook on the transformer appends the woken regions' sub-caption tokens after the
prompt's text tokens (the family's ``joint_text``) and passes an attention mask over the joint
sequence: the prompt's text and every image token see each other; region r's tokens see only
themselves and the image tokens inside region r, which see them back. An image token outside
every woken region sees the prompt alone, so a region with strength 0 (dormant) costs nothing
and changes nothing. Only the positive pass gets regions: Flux's true-CFG negative pass (a
second call at the same timestep) is left as it is. Token order is the family's: [text, image]
(Flux), or [image, text] (SD3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from huajia.thinking.regional import RegionState


class JointRegions:
    """A model hook (``engine.session``'s ``ModelHook``) for joint-attention regions."""

    def __init__(self, state: RegionState, family, captions: list[torch.Tensor], patch: int):
        self.state, self.family, self.captions = state, family, captions  # (1, L_r, D) each
        self.patch = patch  # latent pixels per image token along a side
        self._handle = None
        self._denoiser, self._saved = None, None  # the processors this run replaced
        self._last_timestep: float | None = None

    def attach(self, denoiser: torch.nn.Module) -> None:
        self._handle = denoiser.register_forward_pre_hook(self._extend, with_kwargs=True)
        processors = self.family.mask_processors(denoiser)
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

    def _extend(self, module, args, kwargs):
        state = self.state
        text = kwargs["encoder_hidden_states"]  # (B, T, D)
        batch = text.shape[0]
        state.calls += batch
        timestep = float(torch.as_tensor(kwargs["timestep"]).flatten()[0])
        second = timestep == self._last_timestep  # true CFG's negative pass
        self._last_timestep = timestep
        woken = [r for r in range(len(self.captions)) if float(state.strength[r]) > 0]
        if second or not woken:
            return None
        extra = torch.cat([self.captions[r] for r in woken], 1).to(text.device)
        kwargs = self.family.joint_text(kwargs, extra.expand(batch, -1, -1))
        mask = self.mask(woken, text.shape[1]).to(text.device)
        if batch > 1:  # a CFG batch [uncond, cond]: the unconditional half sees no regions
            mask = torch.stack([self.mask([], text.shape[1], sum(
                c.shape[1] for c in (self.captions[r] for r in woken))).to(text.device)] *
                (batch // 2) + [mask] * (batch - batch // 2))[:, None]
        joint = dict(kwargs.get("joint_attention_kwargs") or {})
        joint["attention_mask"] = mask
        kwargs["joint_attention_kwargs"] = joint
        return args, kwargs

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
