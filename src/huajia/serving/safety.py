"""Prompt safety filter for English and Chinese that cannot simply be spelled around.

A prompt is read in two views, and the blocked terms are folded the same way:
- **Latin**: NFKC (full-width → ASCII), combining marks dropped, every other letter reduced to
  the Latin letter it looks like (Unicode confusables: Cyrillic 'е', Armenian 'ո' → 'n'), then
  transliterated (anyascii: 'ú' → 'u'), case-folded, common letter/digit swaps (0→o, 1/l→i, 3→e,
  4→a, 5→s, 7→t, v→u, @→a, $→s). English terms and the pinyin of the Chinese terms (pypinyin)
  are matched here, inside a word or across whole words ('n u d e', 'N.u d-E', 'luo ti'), never
  across a word's middle, so 'flamingo red' does not read 'gore'.
- **Chinese**: Traditional → Simplified (opencc), only the CJK characters kept, so '裸 體' and
  '裸-体' read '裸体'.
The lists are data (``data/blocked_terms.txt``; a deployment can pass its own). A '+' line is an
allowed compound: a blocked term found inside it does not count (颜色情况 is not 色情). Words
that are harmless alone and plain beside a person or a body are blocked in pairs: '@name: term,
term' names a group, 'A & B' blocks a prompt holding a term of each part ('=nua & @pessoa': 'uma
mulher nua' is refused, 'uma rua nua de árvores' is not; 'bloody' with a corpse, not a steak).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from huajia.errors import HuajiaError

_SWAPS = str.maketrans({"0": "o", "1": "i", "l": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                        "v": "u", "@": "a", "$": "s", "!": "i", "|": "i"})
_NOT_LATIN = re.compile(r"[^a-z0-9@$!|]+")
# Greek letters that look like Latin ones where the confusables data offers no plain letter
# (and anyascii would spell them as they sound: η → 'i', χ → 'ch').
_LOOKS_LIKE = {"η": "n", "χ": "x", "ν": "v", "ρ": "p", "τ": "t", "κ": "k", "γ": "y", "ω": "w",
               "ι": "i", "υ": "u", "ɑ": "a"}
_NO_PINYIN = "[no pinyin]"  # a term's marker: its pinyin is also an everyday word


def _strip_marks(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _is_cjk(char: str) -> bool:
    """Han, kana and Hangul: the scripts matched in the CJK view, never transliterated into the
    Latin one (romaji 'ero' of エロ would match 'hero')."""
    return unicodedata.name(char, "").startswith(("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH",
                                                  "HIRAGANA", "KATAKANA", "HANGUL SYLLABLE"))


def expand_forms(term: str) -> list[str]:
    """A term's word forms written once: 'behead{,s,ed,ing}' → behead, beheads, beheaded,
    beheading; several groups give every combination ('h{is,er} {back,neck}')."""
    match = re.search(r"\{([^{}]*)\}", term)
    if match is None:
        return [term]
    return [form for ending in match.group(1).split(",")
            for form in expand_forms(term[:match.start()] + ending + term[match.end():])]


@dataclass(frozen=True)
class LatinView:
    """The prompt's words, folded, joined without separators; ``starts``/``ends``: where the
    words begin and end in ``text``."""
    text: str
    starts: frozenset[int]
    ends: frozenset[int]

    def occurrences(self, term: str, whole: bool = False) -> list[tuple[int, int]]:
        """Where ``term`` occurs inside one word, or spans whole words (a plural 's'/'es' may
        follow the last); ``whole``: only the latter ('sex' is not in 'Essex')."""
        found, at = [], self.text.find(term)
        while at >= 0:
            end = at + len(term)
            inside_one_word = not any(at < b < end for b in self.starts)
            whole_words = at in self.starts and any(end + k in self.ends and self.text[end:end + k]
                                                    in ("", "s", "es") for k in (0, 1, 2))
            if whole_words or (inside_one_word and not whole):
                found.append((at, end))
            at = self.text.find(term, at + 1)
        return found


class Folder:
    """Folds text into the two views; per-instance caches (the confusables lookup is slow)."""

    def __init__(self):
        from opencc import OpenCC

        self._t2s = OpenCC("t2s")
        self._latin: dict[str, str] = {}

    def latin_char(self, char: str) -> str:
        if char.isascii():
            return char
        if char not in self._latin:
            self._latin[char] = self._skeleton(char)
        return self._latin[char]

    @classmethod
    def _skeleton(cls, char: str) -> str:
        """The plain letter(s) ``char`` looks like: its compatibility form when that is plain
        ('ｎ', '𝐧', 'ⓝ', 'ú'), else the confusables data (on the character as typed: NFKC would
        turn 'ϲ' into 'ς' and lose the look), else its transliteration; a capital without a
        look-alike tries its small letter."""
        from anyascii import anyascii
        from confusable_homoglyphs import confusables

        if unicodedata.category(char) == "Mn":
            return ""
        if _is_cjk(char):
            return " "  # a word boundary in the Latin view
        if char in _LOOKS_LIKE:
            return _LOOKS_LIKE[char]
        compatible = _strip_marks(unicodedata.normalize("NFKD", char))
        if compatible.isascii():  # full-width, circled, mathematical letters; accents dropped
            return compatible
        if unicodedata.category(char) in ("So", "Sk", "Zs", "Po", "Pd"):
            return " "  # emoji and marks between letters: 'n🍑u🍑d🍑e' reads 'n u d e'
        found = confusables.is_confusable(char, greedy=True, preferred_aliases=["latin"]) or []
        plain = sorted((_strip_marks(g["c"]) for entry in found for g in entry["homoglyphs"]),
                       key=len)  # 'm' before 'rn'
        plain = [p for p in plain if p.isascii() and p.isalpha() and len(p) <= 2]
        if plain:
            return plain[0]
        if char.lower() != char:
            return cls._skeleton(char.lower())
        if len(compatible) == 1 and compatible != char:  # 'ἠ' → 'η' → 'n'
            return cls._skeleton(compatible)
        return anyascii(compatible)

    def latin_words(self, text: str, drop_digits: bool = False) -> list[str]:
        text = "".join(self.latin_char(c) for c in unicodedata.normalize("NFC", text)).casefold()
        if drop_digits:  # pinyin with tone numbers: 'luo3 ti3'
            text = re.sub(r"[0-9]", "", text)
        words = (w.rstrip("!|") for w in _NOT_LATIN.split(text))  # a trailing '!' is punctuation
        return [w.translate(_SWAPS) for w in words if w]

    def latin(self, text: str, drop_digits: bool = False) -> LatinView:
        words = self.latin_words(text, drop_digits)
        starts, ends, at = [], [], 0
        for word in words:
            starts.append(at)
            at += len(word)
            ends.append(at)
        return LatinView("".join(words), frozenset(starts), frozenset(ends))

    def chinese(self, text: str) -> str:
        text = self._t2s.convert(unicodedata.normalize("NFKC", text))
        return "".join(c for c in text if _is_cjk(c))


def fold(text: str) -> str:
    """The Latin view's letters of ``text`` (what English terms are matched against)."""
    return Folder().latin(text).text


def pinyin_forms(term: str) -> list[str]:
    """Tone-less pinyin of a Chinese term ('裸体' → 'luoti'); none for a term with kana,
    Hangul or a character pypinyin does not know (its pinyin would be a fragment)."""
    from pypinyin import lazy_pinyin

    syllables = lazy_pinyin(term)
    if not all(s.isascii() for s in syllables):
        return []
    return ["".join(syllables)]


@dataclass(frozen=True)
class SafetyVerdict:
    allowed: bool
    term: str | None = None


@dataclass(frozen=True)
class TermSet:
    latin: tuple[tuple[str, str, bool], ...]  # (folded, as listed, whole words only)
    chinese: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Policy:
    blocked: TermSet
    pairs: tuple[tuple[str, tuple[TermSet, ...]], ...]  # (as listed, one set per part)
    allowed_latin: tuple[str, ...]
    allowed_chinese: tuple[str, ...]


def _by_length(pairs) -> tuple:
    return tuple(sorted(pairs, key=lambda p: (-len(p[0]), p[0])))


class _Sets:
    """Terms as they are read, sorted into the two views."""

    def __init__(self, folder: Folder, pinyin: bool = True):
        self.folder, self.pinyin = folder, pinyin
        self.latin: set[tuple[str, str, bool]] = set()
        self.chinese: set[tuple[str, str]] = set()

    def add(self, line: str) -> None:
        whole, no_pinyin = line.startswith("="), _NO_PINYIN in line
        for term in expand_forms(line.lstrip("+=").replace(_NO_PINYIN, "").strip()):
            cjk = self.folder.chinese(term)
            forms = [self.folder.latin(term).text] if not cjk else []
            if cjk:
                self.chinese.add((cjk, term))
                if self.pinyin and not no_pinyin:
                    forms = [self.folder.latin(p).text for p in pinyin_forms(cjk)]
            self.latin.update((form, term, whole) for form in forms if form)

    def frozen(self) -> TermSet:
        return TermSet(_by_length(self.latin), _by_length(self.chinese))


def _members(part: str, groups: dict[str, list[str]], seen: tuple[str, ...] = ()) -> list[str]:
    """A pair's part as terms: a term is itself; a group its terms, groups inside it opened."""
    if not part.startswith("@"):
        return [part]
    if part not in groups or part in seen:
        problem = "names itself" if part in seen else "is not defined"
        raise HuajiaError(f"the safety terms' group {part!r} {problem}; define it once as "
                          f"'{part}: term, term'")
    return [t for member in groups[part] for t in _members(member, groups, (*seen, part))]


def _load_terms(text: str, folder: Folder) -> _Policy:
    """Terms, allowed compounds ('+'), groups ('@name: term, term') and pairs ('@a & =term')."""
    blocked, allowed = _Sets(folder), _Sets(folder)
    groups: dict[str, list[str]] = {}
    pair_lines = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()  # a comment may follow a term
        if not line or line.startswith("#"):
            continue
        if re.match(r"@[\w-]+\s*:", line):
            name, _, terms = line.partition(":")
            groups.setdefault(name.strip(), []).extend(
                t.strip() for t in re.split(r",(?![^{}]*\})", terms) if t.strip())
        elif " & " in line:
            pair_lines.append(line)
        else:
            (allowed if line.startswith("+") else blocked).add(line)
    pairs = []
    for line in pair_lines:
        parts = []
        for part in (p.strip() for p in line.split(" & ")):
            sets = _Sets(folder, pinyin=False)  # a short word's pinyin is inside many words
            for term in _members(part, groups):
                sets.add(term)
            parts.append(sets.frozen())
        pairs.append((line, tuple(parts)))
    return _Policy(blocked.frozen(), tuple(pairs), tuple(p[0] for p in _by_length(allowed.latin)),
                   tuple(p[0] for p in _by_length(allowed.chinese)))


def _excused(span: tuple[int, int], allowed: list[tuple[int, int]], whole_counts: bool) -> bool:
    """Inside an allowed compound; with ``whole_counts`` a term that is the whole compound is
    not excused ('+nudez' excuses the 'nude' in 'nudez', while a pair may ask for 'nudez')."""
    return any(a <= span[0] and span[1] <= b and not (whole_counts and (a, b) == span)
               for a, b in allowed)


class _Reading:
    """One prompt in both views, with the spans its allowed compounds cover."""

    def __init__(self, prompt: str, folder: Folder, policy: _Policy):
        self.chinese = folder.chinese(prompt)
        self.chinese_allowed = [(m.start(), m.end()) for phrase in policy.allowed_chinese
                                for m in re.finditer(re.escape(phrase), self.chinese)]
        self.latin = []
        for drop_digits in (False, True):
            view = folder.latin(prompt, drop_digits)
            self.latin.append((view, [s for phrase in policy.allowed_latin
                                      for s in view.occurrences(phrase)]))

    def first(self, terms: TermSet, whole_counts: bool = False) -> str | None:
        """The first term of ``terms`` the prompt holds outside an allowed compound."""
        for folded, term in terms.chinese:
            for m in re.finditer(re.escape(folded), self.chinese):
                if not _excused((m.start(), m.end()), self.chinese_allowed, whole_counts):
                    return term
        for view, allowed in self.latin:
            for folded, term, whole in terms.latin:
                if any(not _excused(s, allowed, whole_counts)
                       for s in view.occurrences(folded, whole)):
                    return term
        return None


class PromptFilter:
    """The term lists, and a moderation service when one is given (``serving.moderation``):
    a prompt either flags is refused."""

    def __init__(self, terms_file: str | Path | None = None, moderation=None):
        self.moderation = moderation
        if terms_file is None:
            text = resources.files("huajia.serving").joinpath("data/blocked_terms.txt").read_text(
                "utf-8")
        else:
            text = Path(terms_file).read_text(encoding="utf-8")
        self._folder = Folder()
        self._policy = _load_terms(text, self._folder)

    def check(self, prompt: str) -> SafetyVerdict:
        reading = _Reading(prompt, self._folder, self._policy)
        term = reading.first(self._policy.blocked)
        if term is not None:
            return SafetyVerdict(False, term)
        for _line, parts in self._policy.pairs:
            found = [reading.first(part, whole_counts=True) for part in parts]
            if all(found):
                return SafetyVerdict(False, " + ".join(found))
        flagged = self.moderation.flagged(prompt) if self.moderation is not None else None
        return SafetyVerdict(flagged is None, flagged and f"moderation: {flagged}")

    def require_safe(self, prompt: str) -> None:
        verdict = self.check(prompt)
        if not verdict.allowed:
            raise HuajiaError(f"the prompt asks for blocked content ('{verdict.term}'); "
                              "rephrase it without that")
