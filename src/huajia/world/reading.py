"""Reading a prompt as users write it, and saying it again in the world's own words.

A model trained on the shapes world learned its captions' phrasing: "could you draw me three
green triangles please" puts eight words it never saw around the three it knows, and it paints
worse than "three green triangles" (issue 45: 0.39 on prompts phrased as users write them).
``reword`` reads such a prompt (request words skipped, everyday names of the shapes, and sides
given clause by clause: "a red circle on the left and a blue square on the right", "左边一个方块，
右边一个圆") and, when every word was read, returns the world's canonical caption of the same
scene in the prompt's language. When anything is left unread it returns None and the prompt is
painted as written: a rewording never drops what the user said.
"""

from __future__ import annotations

import re

from huajia.world.captions import caption
from huajia.world.parser import ParsedPrompt, detect_lang, parse
from huajia.world.spec import Relation, SceneSpec

_RELATION_OF_SIDE = {"left": "left_of", "right": "right_of", "top": "above", "bottom": "below"}
_OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
_EN_CLAUSES = re.compile(r"\s*(?:[,;.]|\band\b|\bwith\b|\bwhile\b|\bwhereas\b|\bbut\b)\s*")
_ZH_CLAUSES = re.compile(r"\s*(?:[，,；;。、]|和|还有|并且|而)\s*")
_EN_SIDES = (  # (pattern, side): where in the picture, or beside 'it' (the other object)
    (r"\b(?:on|at|to|in) (?:the|its) (?:far )?(left|right)(?: side| hand side| half)?\b(?! of)",
     None),
    (r"\b(left|right) of it\b", None),
    (r"\b(?:at|on|in) the (top|bottom)(?: half| part)?\b(?! of)", None),
    (r"\bon (top)\b(?! of)|\bup (top)\b|\b(?:above|over) (it)\b", "top"),
    (r"\b(?:below|under|beneath|underneath) (it)\b|\bdown (below)\b", "bottom"),
)
_ZH_SIDE = r"(?:它的|它|其)?(左|右|上|下)(?:边|侧|面|方)?"
_ZH_SIDES = (re.compile(rf"^(?:在|位于)?{_ZH_SIDE}(?:是|有|放着|放|画着|画)?"),
             re.compile(rf"(?:在|放在|位于|靠){_ZH_SIDE}$"))
_ZH_SIDE_NAMES = {"左": "left", "右": "right", "上": "top", "下": "bottom"}


def read_as_user(text: str) -> ParsedPrompt | None:
    """The scene a user's prompt asks for, when every word of it was read; else None."""
    by_clause = _read_sides(text)
    if by_clause is not None:
        return by_clause
    parsed = parse(text, reading=True)
    return parsed if parsed.complete and parsed.spec.groups else None


def reword(text: str) -> str | None:
    """The world's canonical caption of ``text`` (same language), or None when the world cannot
    read all of it or it is already phrased that way."""
    parsed = read_as_user(text)
    if parsed is None:
        return None
    words = caption(parsed.spec, "en_plain" if parsed.lang == "en" else "zh_plain")
    return None if words == text.strip() else words


def _read_sides(text: str) -> ParsedPrompt | None:
    """Two objects placed clause by clause ('a star, and on its right a square', '三角形在左，
    正方形在右'): one object per clause, at least one with a side."""
    lang = detect_lang(text)
    clauses = [c for c in (_EN_CLAUSES if lang == "en" else _ZH_CLAUSES).split(text.strip()) if c]
    groups, sides = [], []
    for clause in clauses:
        side, rest = _side(clause, lang)
        parsed = parse(rest, reading=True)
        if not parsed.complete or parsed.spec.relations or len(parsed.spec.groups) > 1:
            return None
        if parsed.spec.groups:
            groups.append(parsed.spec.groups[0])
            sides.append(side)
        elif side is not None:
            if not sides or sides[-1] is not None:  # a side with no object in its clause
                return None
            sides[-1] = side  # 'a star, on the left' puts the star there
    relation = _relation(sides)
    if len(groups) != 2 or relation is None:
        return None
    return ParsedPrompt(SceneSpec(tuple(groups), (relation,)), lang)


def _side(clause: str, lang: str) -> tuple[str | None, str]:
    """The side a clause names and the clause without it."""
    if lang == "en":
        lowered = clause.lower()
        for pattern, fixed in _EN_SIDES:
            match = re.search(pattern, lowered)
            if match:
                side = fixed or next(g for g in match.groups() if g)
                return side, (lowered[:match.start()] + " " + lowered[match.end():]).strip()
        return None, clause
    for pattern in _ZH_SIDES:
        match = pattern.search(clause)
        if match:
            return _ZH_SIDE_NAMES[match.group(1)], clause[:match.start()] + clause[match.end():]
    return None, clause


def _relation(sides: list[str | None]) -> Relation | None:
    """Sides of two objects as one relation: both given and opposite, or one given (it is then
    beside the other)."""
    if len(sides) != 2:
        return None
    first, second = sides
    if first is not None and second is not None:
        return Relation(0, _RELATION_OF_SIDE[first], 1) if _OPPOSITE[first] == second else None
    if first is not None:
        return Relation(0, _RELATION_OF_SIDE[first], 1)
    if second is not None:
        return Relation(1, _RELATION_OF_SIDE[second], 0)
    return None
