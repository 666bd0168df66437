"""Thought 0: plan the picture as regions, each with its own sub-caption.

In the shapes world the parsed spec gives the object groups and their relations: related groups
are put on the sides the relation asks for, other groups share the remaining space in vertical
bands. A prompt the parser cannot fully read falls back to vertical bands that all carry the
whole prompt (TwiG's bands), so regional steering still has something to say.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from huajia.world import captions
from huajia.world.parser import ParsedPrompt, parse
from huajia.world.reading import read_as_user
from huajia.world.spec import ObjectGroup, SceneSpec

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as canvas fractions


@dataclass(frozen=True)
class Region:
    index: int
    box: Box
    caption: str  # the sub-caption that steers this region
    groups: tuple[int, ...] = ()  # spec groups this region must show (empty: free-form band)


@dataclass(frozen=True)
class Plan:
    prompt: str
    lang: str
    regions: tuple[Region, ...]
    spec: SceneSpec | None = None  # None when the prompt was not fully understood
    unparsed: tuple[str, ...] = field(default=())
    background: str = ""  # what fills the rest of the picture (an LLM plan says)
    planner: str = "world"  # who planned it: world | llm | bands

    def describe(self) -> str:
        parts = [f"{r.caption} @ ({r.box[0]:.2f},{r.box[1]:.2f})-({r.box[2]:.2f},{r.box[3]:.2f})"
                 for r in self.regions]
        zh = self.lang == "zh"
        said = ("计划：" if zh else "plan: ") + "; ".join(parts)
        if self.background:
            said += ("；背景：" if zh else "; background: ") + self.background
        return said


def _sub_caption(group: ObjectGroup, lang: str) -> str:
    one = SceneSpec((group,))
    return captions.caption(one, "en_plain" if lang == "en" else "zh_plain")


_SPLIT = {"left_of": (0, True), "right_of": (0, False), "above": (1, True), "below": (1, False)}


def _split(box: Box, axis: int, first_low: bool) -> tuple[Box, Box]:
    """Cut ``box`` in half along ``axis``; returns (subject's half, object's half)."""
    x0, y0, x1, y1 = box
    if axis == 0:
        low, high = (x0, y0, (x0 + x1) / 2, y1), ((x0 + x1) / 2, y0, x1, y1)
    else:
        low, high = (x0, y0, x1, (y0 + y1) / 2), (x0, (y0 + y1) / 2, x1, y1)
    return (low, high) if first_low else (high, low)


def _bands(n: int, box: Box = (0.0, 0.0, 1.0, 1.0)) -> list[Box]:
    x0, y0, x1, y1 = box
    width = (x1 - x0) / n
    return [(x0 + i * width, y0, x0 + (i + 1) * width, y1) for i in range(n)]


def plan_from_spec(prompt: str, parsed: ParsedPrompt) -> Plan:
    """One band per relation (split along the relation's axis) and per unrelated group. A group
    in two relations keeps the place its last relation gives it."""
    spec, lang = parsed.spec, parsed.lang
    related = list(spec.relations)
    in_relation = {i for r in related for i in (r.subject, r.object)}
    free = [i for i in range(len(spec.groups)) if i not in in_relation]
    slots = len(related) + len(free)
    areas = _bands(slots) if slots > 1 else [(0.0, 0.0, 1.0, 1.0)]
    boxes: dict[int, Box] = {}
    for area, rel in zip(areas, related, strict=False):
        axis, subject_low = _SPLIT[rel.relation]
        boxes[rel.subject], boxes[rel.object] = _split(area, axis, subject_low)
    for area, index in zip(areas[len(related):], free, strict=False):
        boxes[index] = area
    regions = tuple(Region(k, boxes[i], _sub_caption(spec.groups[i], lang), (i,))
                    for k, i in enumerate(sorted(boxes)))
    return Plan(prompt, lang, regions, spec)


def plan_prompt(prompt: str, fallback_bands: int = 3, world: bool = True) -> Plan:
    """Plan ``prompt``: from its scene spec when the world understands it (and ``world``),
    else bands (``thinking.planner`` chooses among the planners)."""
    parsed = parse(prompt)
    if world and parsed.spec.groups and not parsed.unparsed:
        return plan_from_spec(prompt, parsed)
    as_user = read_as_user(prompt) if world else None  # 'could you draw …', '左边一个…'
    if as_user is not None:
        return plan_from_spec(prompt, as_user)
    regions = tuple(Region(i, box, prompt) for i, box in enumerate(_bands(fallback_bands)))
    return Plan(prompt, parsed.lang, regions, None, parsed.unparsed, planner="bands")
