"""AUTOMATIC1111 prompt-weight syntax → (text, weight) segments.

``(word:1.5)`` sets a weight, ``(word)`` multiplies by 1.1, ``[word]`` divides by 1.1, brackets
nest, ``\\(`` ``\\)`` ``\\[`` ``\\]`` are literal brackets, and ``BREAK`` starts a new 75-token
chunk. Unlike A1111 we do not guess at malformed syntax: an unclosed bracket or a weight that is
not a number is an error that says where it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from huajia.errors import HuajiaError

ROUND, SQUARE = 1.1, 1 / 1.1
BREAK = "BREAK"
MAX_WEIGHT = 10.0  # |weight| beyond this only breaks the picture (A1111 users stay under 2)
MAX_DEPTH = 16  # bracket nesting; 500 deep costs time and means nothing
MAX_BREAKS = 7  # at most 8 chunks from BREAK (each chunk is a text-encoder pass per image)
_TOKEN = re.compile(r"\\[()\[\]\\]|\(|\)|\[|\]|:|\bBREAK\b|[^\\()\[\]:B]+|B|\\")


@dataclass(frozen=True)
class Segment:
    text: str
    weight: float = 1.0


def _fail(prompt: str, position: int, problem: str) -> HuajiaError:
    shown = prompt if len(prompt) <= 80 else "…" + prompt[max(0, position - 30):position + 30] + "…"
    return HuajiaError(f"malformed prompt: {problem} at character {position + 1} of {shown!r}; "
                       "write literal brackets as \\( \\) \\[ \\]")


def parse_weights(prompt: str) -> list[Segment]:
    """Split ``prompt`` into weighted segments; ``Segment(BREAK, -1)`` marks a chunk break."""
    segments: list[Segment] = []
    stack: list[tuple[str, int, int]] = []  # (bracket, position, index of its first segment)
    position = 0
    for match in _TOKEN.finditer(prompt):
        piece, position = match.group(0), match.start()
        if piece in ("(", "["):
            stack.append((piece, position, len(segments)))
            if len(stack) > MAX_DEPTH:
                raise _fail(prompt, position, f"brackets nest deeper than {MAX_DEPTH}")
        elif piece in (")", "]"):
            if not stack or stack[-1][0] != ("(" if piece == ")" else "["):
                raise _fail(prompt, position, f"'{piece}' closes nothing")
            bracket, _, first = stack.pop()
            factor = ROUND if bracket == "(" else SQUARE
            explicit = _explicit_weight(segments, first, bracket, prompt, position)
            for i in range(first, len(segments)):
                if segments[i].weight >= 0:
                    scale = explicit if explicit is not None else factor
                    weight = segments[i].weight * scale
                    if not abs(weight) <= MAX_WEIGHT:  # nested weights multiply
                        raise _fail(prompt, position, f"nested weights multiply to {weight:g}, "
                                                      f"outside ±{MAX_WEIGHT:g}")
                    segments[i] = Segment(segments[i].text, weight)
        elif piece == BREAK:
            segments.append(Segment(BREAK, -1.0))
            if sum(seg.weight < 0 for seg in segments) > MAX_BREAKS:
                raise HuajiaError(f"the prompt has more than {MAX_BREAKS} BREAKs (at most "
                                  f"{MAX_BREAKS + 1} chunks); join its parts")
        elif piece.startswith("\\") and len(piece) == 2:
            segments.append(Segment(piece[1]))
        else:
            segments.append(Segment(piece))
    if stack:
        bracket, where, _ = stack[-1]
        raise _fail(prompt, where, f"'{bracket}' is never closed")
    return _merge(segments)


def _explicit_weight(segments: list[Segment], first: int, bracket: str, prompt: str,
                     position: int) -> float | None:
    """Handle '(text:1.5)': strip ':1.5' from the group's segments and return 1.5."""
    colon = None
    for i in range(len(segments) - 1, first - 1, -1):
        if segments[i].text == ":":
            colon = i
            break
    if colon is None:
        return None
    number = "".join(s.text for s in segments[colon + 1:]).strip()
    if bracket == "[":
        raise _fail(prompt, position, "'[...]' cannot carry a weight; use '(text:0.9)'")
    try:
        weight = float(number)
    except ValueError:
        raise _fail(prompt, position, f"weight '{number}' is not a number") from None
    if not abs(weight) <= MAX_WEIGHT:  # also nan and inf
        raise _fail(prompt, position, f"weight '{number}' is outside -{MAX_WEIGHT:g} to "
                                      f"{MAX_WEIGHT:g}")
    del segments[colon:]
    return weight


def _merge(segments: list[Segment]) -> list[Segment]:
    """Join neighbours of equal weight (and stray ':' text) into whole segments."""
    merged: list[Segment] = []
    for seg in segments:
        if merged and merged[-1].weight == seg.weight and seg.weight >= 0:
            merged[-1] = Segment(merged[-1].text + seg.text, seg.weight)
        else:
            merged.append(seg)
    return [s for s in merged if s.text.strip() or s.weight < 0]


def plain_text(prompt: str) -> str:
    """The prompt without weight syntax (what the words say)."""
    return " ".join(s.text.strip() for s in parse_weights(prompt) if s.weight >= 0)
