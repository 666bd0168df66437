"""A1111 weights and BREAK on T5 (SD3, FLUX.1, Chroma, PixArt-Σ), the way ComfyUI weighs any
text encoder: each token's embedding is moved away from (weight > 1) or toward (weight < 1)
the embedding of the empty prompt at its position, ``z = z_empty + w · (z − z_empty)``.

A prompt is tokenised segment by segment, each token keeping its segment's weight; BREAK and the
encoder's window (T5: 512 for FLUX.1, 256 for SD3, 300 for PixArt-Σ) cut it into chunks, each
encoded separately with its EOS and padding, as the pipeline would, and concatenated along the
sequence. A prompt without weights, within one window, gives exactly the pipeline's own
embeddings (tokens of weight 1 are left as they are).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch

from huajia.engine.embeddings import token_chunks


@dataclass(frozen=True)
class T5Encoding:
    embeds: torch.Tensor  # (1, chunks * window, D)
    mask: torch.Tensor  # (1, chunks * window): 1 for tokens and EOS, 0 for padding


@torch.no_grad()
def encode_t5(tokenizer, encoder, prompt: str, window: int, *, masked: bool) -> T5Encoding:
    """``prompt`` through T5 with its weights. ``masked``: the encoder sees the attention mask
    (Chroma, PixArt-Σ do this; FLUX.1 and SD3 encode the padding too)."""
    empty, _ = _encode(tokenizer, encoder, [], window, masked)
    parts, masks = [], []
    for ids, weights in token_chunks(tokenizer, prompt, window - 1):
        hidden, mask = _encode(tokenizer, encoder, ids, window, masked)
        weight = torch.ones(window, dtype=hidden.dtype, device=hidden.device)
        weight[:len(weights)] = torch.tensor(weights, dtype=hidden.dtype)
        weight = weight[None, :, None]
        parts.append(torch.where(weight != 1, empty + (hidden - empty) * weight, hidden))
        masks.append(mask)
    return T5Encoding(torch.cat(parts, dim=1), torch.cat(masks, dim=1))


def _encode(tokenizer, encoder, ids: list[int], window: int,
            masked: bool) -> tuple[torch.Tensor, torch.Tensor]:
    body = [*ids, tokenizer.eos_token_id]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = encoder.device
    input_ids = torch.tensor([body + [pad] * (window - len(body))], device=device)
    mask = torch.zeros_like(input_ids)
    mask[:, :len(body)] = 1
    output = encoder(input_ids, attention_mask=mask if masked else None)[0]
    return output, mask


def has_syntax(prompt: str) -> bool:
    """Does ``prompt`` use weights or BREAK (else the pipeline's own encoding is the same)?"""
    from huajia.engine.prompt_weights import BREAK, parse_weights

    segments = parse_weights(prompt)
    return any(s.weight != 1.0 or s.text == BREAK for s in segments)


def even(a: T5Encoding, b: T5Encoding) -> tuple[T5Encoding, T5Encoding]:
    """``a`` and ``b`` at one length (a batch with classifier-free guidance needs it): the
    shorter gets masked copies of its own last padding row."""
    def padded(x: T5Encoding, length: int) -> T5Encoding:
        extra = length - x.embeds.shape[1]
        if extra <= 0:
            return x
        rows = x.embeds[:, -1:].expand(-1, extra, -1)
        return T5Encoding(torch.cat([x.embeds, rows], dim=1),
                          torch.cat([x.mask, x.mask.new_zeros(1, extra)], dim=1))

    length = max(a.embeds.shape[1], b.embeds.shape[1])
    return padded(a, length), padded(b, length)


_ALWAYS_OWN: ContextVar[bool] = ContextVar("always_own", default=False)


@contextmanager
def always_own_encoding():
    """Within it, ``own_encoding`` says yes: a batch that mixes weighted and plain prompts
    needs embeddings for all of them (the pipeline takes strings or embeddings, not both)."""
    token = _ALWAYS_OWN.set(True)
    try:
        yield
    finally:
        _ALWAYS_OWN.reset(token)


def own_encoding(tokenizer, width: int, *texts: str) -> bool:
    """Must huajia encode ``texts`` itself: they use weights or BREAK, or one is longer than
    the encoder's window (``width`` tokens), which the pipeline's own encoding would cut?"""
    return _ALWAYS_OWN.get() or any(has_syntax(text) or
               len(tokenizer(text, add_special_tokens=False).input_ids) > width for text in texts)


def trimmed(encoding: T5Encoding, window: int):
    """The first chunk's embeddings up to its last unmasked token (1, L, D): one caption for
    thinking's regional prompts, which pad and mask it to the prompt's length."""
    length = max(1, int(encoding.mask[0, :window].sum()))
    return encoding.embeds[:, :length]


def as_prompt(encoding: T5Encoding, dtype) -> dict:
    """An encoding (a negative prompt's) as the keywords of a masked pipeline's prompt."""
    return {"prompt_embeds": encoding.embeds.to(dtype), "prompt_attention_mask": encoding.mask}


def masked_kwargs(positive: T5Encoding, negative: T5Encoding, dtype) -> dict:
    """A weighted prompt and negative prompt (at one length, see ``even``) as the keywords of
    pipelines that take attention masks beside the embeddings (PixArt-Σ, Sana, Lumina 2);
    ``negative_prompt=None``, since their default "" may not come with embeddings."""
    kwargs: dict = {"negative_prompt": None}
    for key, encoding in zip(("", "negative_"), (positive, negative), strict=True):
        kwargs[f"{key}prompt_embeds"] = encoding.embeds.to(dtype)
        kwargs[f"{key}prompt_attention_mask"] = encoding.mask
    return kwargs
