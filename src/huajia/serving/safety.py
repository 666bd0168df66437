"""Prompt safety filter for English and Chinese that survives simple obfuscation.

Prompts and terms are folded the same way before matching: NFKC (full-width → ASCII), case
folding, common letter/digit swaps (0→o, 1→i, 3→e, 4→a, 5→s, 7→t, @→a, $→s), and every space,
punctuation mark and separator dropped — so 'N.u d-E', 'ｎｕｄｅ' and 'n u d 3' all read 'nude'.
The blocked terms are data (``data/blocked_terms.txt``); a deployment can pass its own list.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from huajia.errors import HuajiaError

_SWAPS = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                        "$": "s", "!": "i", "|": "i"})
_DROP = re.compile(r"[\W_]+", re.UNICODE)


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().translate(_SWAPS)
    return _DROP.sub("", text)


@dataclass(frozen=True)
class SafetyVerdict:
    allowed: bool
    term: str | None = None


class PromptFilter:
    def __init__(self, terms_file: str | Path | None = None):
        if terms_file is None:
            text = resources.files("huajia.serving").joinpath("data/blocked_terms.txt").read_text(
                "utf-8")
        else:
            text = Path(terms_file).read_text(encoding="utf-8")
        lines = [line.strip() for line in text.splitlines()
                 if line.strip() and not line.startswith("#")]
        terms = [t for t in lines if not t.startswith("+")]
        self._allowed = sorted({fold(t[1:]) for t in lines if t.startswith("+")}, key=len,
                               reverse=True)
        self._terms = sorted({(fold(t), t) for t in terms if fold(t)}, key=lambda x: -len(x[0]))

    def check(self, prompt: str) -> SafetyVerdict:
        folded = fold(prompt)
        for phrase in self._allowed:
            folded = folded.replace(phrase, "|")
        for folded_term, term in self._terms:
            if folded_term in folded:
                return SafetyVerdict(False, term)
        return SafetyVerdict(True)

    def require_safe(self, prompt: str) -> None:
        verdict = self.check(prompt)
        if not verdict.allowed:
            raise HuajiaError(f"the prompt asks for blocked content ('{verdict.term}'); "
                              "rephrase it without that")
