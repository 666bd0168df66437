"""Weighted prompt embeddings for SD-style and SDXL-style pipelines, with long-prompt chunking.

As in AUTOMATIC1111: the prompt is tokenised segment by segment, each token keeps its segment's
weight, tokens are cut into chunks of (window - 2) with BOS/EOS around each, every chunk is
encoded separately and the chunks are concatenated along the sequence. Weights scale the hidden
states, then the mean is restored so a weight changes emphasis, not overall magnitude.
Positive and negative prompts are padded to the same number of chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from huajia.engine.prompt_weights import BREAK, parse_weights


@dataclass(frozen=True)
class Encoded:
    """What a pipeline's ``__call__`` takes instead of prompt strings."""

    prompt_embeds: torch.Tensor  # (1, chunks * window, D)
    pooled: torch.Tensor | None = None  # (1, D2) for SDXL-style pipelines


def token_chunks(tokenizer, prompt: str, width: int | None = None
                 ) -> list[tuple[list[int], list[float]]]:
    """Token ids (no special tokens) and their weights, cut into chunks of ``width`` tokens
    (CLIP: its window less BOS and EOS) and at each BREAK."""
    width = width or tokenizer.model_max_length - 2
    chunks: list[tuple[list[int], list[float]]] = [([], [])]
    for segment in parse_weights(prompt):
        if segment.weight < 0 and segment.text == BREAK:
            chunks.append(([], []))
            continue
        ids = tokenizer(segment.text, add_special_tokens=False).input_ids
        for token in ids:
            if len(chunks[-1][0]) == width:
                chunks.append(([], []))
            chunks[-1][0].append(token)
            chunks[-1][1].append(segment.weight)
    return chunks


def _pad_chunk(tokenizer, ids: list[int], weights: list[float]) -> tuple[list[int], list[float]]:
    window = tokenizer.model_max_length
    bos = tokenizer.bos_token_id
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    body = [bos, *ids, eos]
    return body + [pad] * (window - len(body)), [1.0, *weights, 1.0] + [1.0] * (window - len(body))


def _encode_chunks(tokenizer, text_encoder, chunks, penultimate: bool,
                   device) -> tuple[torch.Tensor, torch.Tensor | None]:
    hidden_states, pooled = [], None
    for ids, weights in chunks:
        padded, padded_weights = _pad_chunk(tokenizer, ids, weights)
        input_ids = torch.tensor([padded], device=device)
        output = text_encoder(input_ids, output_hidden_states=penultimate)
        hidden = output.hidden_states[-2] if penultimate else output[0]
        if pooled is None:
            pooled = getattr(output, "text_embeds", None)
        hidden_states.append(_weighted(hidden, padded_weights))
    return torch.cat(hidden_states, dim=1), pooled


def _weighted(hidden: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """``hidden`` with each token scaled by its weight, then its mean restored (A1111).

    The restoration divides by the weighted mean, which is about 0 when the encoder's last
    LayerNorm has no bias (a fresh CLIP; the embedded model's is small too): 0 / 0 is NaN and
    a tiny denominator blows the embeddings up. A factor outside 0.1-10 comes from such a mean,
    not from the weights, so it is not applied."""
    if all(w == 1.0 for w in weights):
        return hidden
    weighted = hidden * torch.tensor(weights, device=hidden.device, dtype=hidden.dtype)[None, :, None]
    factor = hidden.mean() / weighted.mean()
    return weighted * factor if torch.isfinite(factor) and 0.1 <= factor <= 10 else weighted


def _even(tokenizer, prompt: str, negative: str):
    a, b = token_chunks(tokenizer, prompt), token_chunks(tokenizer, negative)
    while len(a) < len(b):
        a.append(([], []))
    while len(b) < len(a):
        b.append(([], []))
    return a, b


@torch.no_grad()
def encode_weighted(pipe, prompt: str, negative: str) -> tuple[Encoded, Encoded]:
    """(positive, negative) embeddings for ``pipe`` (SD-style or SDXL-style)."""
    device = pipe.text_encoder.device if pipe.text_encoder is not None else pipe.device
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    sdxl = getattr(pipe, "text_encoder_2", None) is not None
    if sdxl:
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    outputs = []
    for text in ("prompt", "negative"):
        parts, pooled = [], None
        for tokenizer, encoder in pairs:
            positive_chunks, negative_chunks = _even(tokenizer, prompt, negative)
            chunks = positive_chunks if text == "prompt" else negative_chunks
            hidden, pooled_here = _encode_chunks(tokenizer, encoder, chunks, sdxl, device)
            parts.append(hidden)
            pooled = pooled_here if pooled_here is not None else pooled
        outputs.append(Encoded(torch.cat(parts, dim=-1), pooled if sdxl else None))
    return outputs[0], outputs[1]
