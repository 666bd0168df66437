"""A1111 weights and BREAK on chat/instruction-templated encoders (Sana's and Lumina 2's Gemma 2,
Qwen-Image's Qwen2.5-VL, Z-Image's Qwen3, HiDream's Llama 3.1), the ComfyUI way: each of the
user's tokens is moved from the embedding of the empty prompt at its position by its weight,
``z = z_empty + w · (z − z_empty)``, only where ``w ≠ 1``.

The pipeline's own text (its instruction or system prefix, then the prompt as the pipeline
would pass it) is tokenised as the pipeline tokenises it; the character offsets of the tokens
tell which are the user's words and which weight each has (a token takes the weight of its last
character). BREAK and the window cut a prompt into chunks, each encoded with the template and
concatenated along the sequence. A prompt without weights, within one window, is tokenised and
encoded exactly as the pipeline does it, so it gives the pipeline's own embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from huajia.engine.prompt_weights import BREAK, parse_weights
from huajia.engine.t5_weights import T5Encoding


@dataclass(frozen=True)
class TextChunk:
    text: str
    weights: tuple[float, ...]  # one per character of ``text``


def text_chunks(tokenizer, prompt: str, width: int,
                transform: Callable[[str], str] = str) -> list[TextChunk]:
    """The prompt's words as the pipeline would take them (segments stripped and joined by one
    space, as ``plain_text``), each character with its weight, cut at each BREAK and every
    ``width`` tokens. ``transform`` is applied segment by segment (Sana lowercases)."""
    pieces: list[list] = [[]]
    for segment in parse_weights(prompt):
        if segment.weight < 0 and segment.text == BREAK:
            pieces.append([])
        elif segment.weight >= 0:
            pieces[-1].append(segment)
    chunks = []
    for piece in pieces:
        text, weights = "", []
        for segment in piece:
            words = transform(segment.text.strip())
            if not words:
                continue
            if text:
                text += " "
                weights.append(1.0)
            text += words
            weights += [segment.weight] * len(words)
        offsets = tokenizer(text, add_special_tokens=False,
                            return_offsets_mapping=True).offset_mapping
        start = 0
        for index in range(width, len(offsets), width):
            cut = offsets[index][0]
            chunks.append(_stripped(text[start:cut], weights[start:cut]))
            start = cut
        chunks.append(_stripped(text[start:], weights[start:]))
    return chunks


def _stripped(text: str, weights: list[float]) -> TextChunk:
    left = len(text) - len(text.lstrip())
    right = len(text.rstrip())
    return TextChunk(text[left:right], tuple(weights[left:right]))


def token_weights(offsets, start: int, chunk: TextChunk) -> list[float]:
    """The weight of each token of a template whose user text begins at character ``start``:
    the weight of the token's last character where that is the user's, else 1."""
    weights = []
    for begin, end in offsets:
        last = end - 1 - start
        inside = end > begin and 0 <= last < len(chunk.weights)
        weights.append(chunk.weights[last] if inside else 1.0)
    return weights


@torch.no_grad()
def encode_chunks(chunks: list[TextChunk], prefix: str,
                  encode: Callable[..., tuple[torch.Tensor, torch.Tensor, list]],
                  select: list[int] | slice | None = None, suffix: str = "",
                  dim: int = 1) -> T5Encoding:
    """Each chunk as ``prefix + chunk.text + suffix`` through ``encode`` (text and the length
    to pad to, None for the template's own → hidden states (1, L, D), attention mask (1, L) and
    the tokens' character offsets), weighted against the template of the empty prompt padded
    to the same length, ``select``-ed positions kept (Sana keeps BOS and the last ones,
    Qwen-Image drops its template's prefix), and concatenated along the sequence (``dim`` of
    the hidden states: 2 for HiDream's stack of Llama layers, (layers, 1, L, D))."""
    parts, masks = [], []
    empties: dict[int, torch.Tensor] = {}
    for chunk in chunks:
        hidden, mask, offsets = encode(prefix + chunk.text + suffix, None)
        length = hidden.shape[dim]
        if length not in empties:
            empties[length] = encode(prefix + suffix, length)[0]
        empty = empties[length]
        weight = torch.tensor(token_weights(offsets, len(prefix), chunk), dtype=hidden.dtype,
                              device=hidden.device)[None, :, None]
        hidden = torch.where(weight != 1, empty + (hidden - empty) * weight, hidden)
        if select is not None:
            hidden, mask = hidden[:, select], mask[:, select]
        parts.append(hidden)
        masks.append(mask)
    return T5Encoding(torch.cat(parts, dim=dim), torch.cat(masks, dim=1))
