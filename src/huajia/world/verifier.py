"""The verifier: does a picture show what a spec asks for? Per-constraint pass/fail, explained.

Constraints: one count per object group (exact, over objects that match every attribute the spec
states), one per relation (group centres, with a tolerance), and the background if it was named.
Explanations are one line in the prompt's language, precise enough for the thinking loop to act
on: "expected 2 red circles, found 1; also saw 1 blue circle" / "应有2个红色圆形，只找到1个".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from huajia.world import vocab
from huajia.world.detect import Detection, detect
from huajia.world.spec import ObjectGroup, Relation, SceneSpec

RELATION_TOLERANCE = 0.04  # centres must differ by this much (canvas fraction) along the axis
_ATTRS = ("colour", "texture", "size")


@dataclass(frozen=True)
class ConstraintResult:
    kind: str  # "count" | "relation" | "background"
    passed: bool
    explanation: str
    groups: tuple[int, ...]  # the spec groups this constraint is about
    # how close it came, 0–1 (1 iff passed): a critic comparing half-made pictures needs to
    # tell "one of two red circles" from "nothing there"
    credit: float | None = None

    def __post_init__(self) -> None:
        if self.credit is None:
            object.__setattr__(self, "credit", 1.0 if self.passed else 0.0)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    constraints: tuple[ConstraintResult, ...]
    detections: tuple[Detection, ...]
    background: str
    lang: str = "en"

    @property
    def score(self) -> float:
        """Fraction of constraints satisfied (1.0 when there are none)."""
        if not self.constraints:
            return 1.0
        return sum(c.passed for c in self.constraints) / len(self.constraints)

    def explain(self) -> str:
        failed = [c.explanation for c in self.constraints if not c.passed]
        joiner = "；" if self.lang == "zh" else "; "
        if failed:
            return joiner.join(failed)
        return self.constraints[0].explanation if self.constraints else ""


def matches(detection: Detection, group: ObjectGroup) -> bool:
    return detection.shape == group.shape and all(
        getattr(group, a) is None or getattr(detection, a) == getattr(group, a) for a in _ATTRS)


def _describe(group: ObjectGroup, lang: str, count: int | None, numbered: bool = True) -> str:
    """'2 small red circles' / '2个小的红色圆形'; count None or ``numbered=False`` → no number
    (the noun is still singular for a count of 1)."""
    words = []
    concepts = {"size": vocab.SIZES, "texture": vocab.TEXTURES, "colour": vocab.COLOURS}
    order = ("size", "texture", "colour") if lang == "en" else ("size", "colour", "texture")
    for attr in order:
        value = getattr(group, attr)
        if value is not None:
            concept = vocab.by_id(concepts[attr], value)
            words.append(concept.en[0] if lang == "en" else concept.zh[0])
    shape = vocab.by_id(vocab.SHAPES, group.shape)
    show = numbered and count is not None
    if lang == "zh":
        return (f"{count}个" if show else "") + "".join(words) + shape.zh[0]
    noun = shape.en[0] if count == 1 else shape.en_plural
    return " ".join(([str(count)] if show else []) + words + [noun])


def _as_group(d: Detection, like: ObjectGroup) -> ObjectGroup:
    """A detection described with the attributes that ``like`` cares about, plus its shape."""
    return ObjectGroup(d.shape, 1, *(getattr(d, a) if getattr(like, a) else None for a in _ATTRS))


def _near_misses(group: ObjectGroup, detections: tuple[Detection, ...]) -> list[ObjectGroup]:
    """Objects that differ from the group in exactly one respect (shape or one attribute)."""
    misses = []
    for d in detections:
        if matches(d, group):
            continue
        wrong = [a for a in _ATTRS if getattr(group, a) is not None and getattr(d, a) != getattr(group, a)]
        if len(wrong) + (d.shape != group.shape) == 1:
            misses.append(_as_group(d, group))
    return misses


def _count_result(index: int, group: ObjectGroup, detections: tuple[Detection, ...],
                  lang: str) -> ConstraintResult:
    found = sum(matches(d, group) for d in detections)
    passed = found >= 2 if group.count is None else found == group.count
    if group.count is None:
        want = (f"至少2个{_describe(group, lang, None)}" if lang == "zh"
                else f"2 or more {_describe(group, lang, None)}")
    else:
        want = _describe(group, lang, group.count)
    if lang == "zh":
        text = f"有{want}" if passed else f"应有{want}，{'只' if found else ''}找到{found}个"
    else:
        text = f"found {want}" if passed else f"expected {want}, found {found}"
    misses = [] if passed else _near_misses(group, detections)
    if misses:
        kinds: dict[ObjectGroup, int] = {}
        for m in misses:
            kinds[m] = kinds.get(m, 0) + 1
        seen = [_describe(g, lang, n) for g, n in list(kinds.items())[:2]]
        text += ("；另有" + "、".join(seen)) if lang == "zh" else "; also saw " + ", ".join(seen)
    return ConstraintResult("count", passed, text, (index,),
                            1.0 if passed else _count_credit(group, found, len(misses)))


def _count_credit(group: ObjectGroup, found: int, near_misses: int) -> float:
    """Partial credit for a count that failed: right objects found (too few or too many), and
    half for each near miss (one attribute or the shape wrong) filling a missing place."""
    want = 2 if group.count is None else group.count
    right = min(found, want)
    near = min(near_misses, want - right)
    return min(0.99, (right + 0.5 * near) / max(want, found))


_REL_AXIS = {"left_of": (0, -1), "right_of": (0, 1), "above": (1, -1), "below": (1, 1)}
_SIDE_WORDS = {
    "en": {(0, -1): "to its left", (0, 1): "to its right", (1, -1): "above it", (1, 1): "below it"},
    "zh": {(0, -1): "左边", (0, 1): "右边", (1, -1): "上方", (1, 1): "下方"},
}


def _relation_result(rel: Relation, spec: SceneSpec, detections: tuple[Detection, ...],
                     lang: str) -> ConstraintResult:
    subj_group, obj_group = spec.groups[rel.subject], spec.groups[rel.object]
    subj = [d for d in detections if matches(d, subj_group)]
    obj = [d for d in detections if matches(d, obj_group)]
    rel_word = vocab.by_id(vocab.RELATIONS, rel.relation)
    a = _describe(subj_group, lang, subj_group.count, numbered=False)
    b = _describe(obj_group, lang, obj_group.count, numbered=False)
    groups = (rel.subject, rel.object)
    if not subj or not obj:
        missing = a if not subj else b
        text = (f"无法判断位置：没有找到{missing}" if lang == "zh"
                else f"cannot check '{rel_word.en[0]}': no {missing} found")
        return ConstraintResult("relation", False, text, groups)
    axis, sign = _REL_AXIS[rel.relation]
    coord = (lambda d: d.cx) if axis == 0 else (lambda d: d.cy)
    delta = float(np.mean([coord(d) for d in subj]) - np.mean([coord(d) for d in obj]))
    passed = delta * sign > RELATION_TOLERANCE
    if lang == "zh":
        side = _SIDE_WORDS["zh"][(axis, 1 if delta > 0 else -1)]
        actual = "齐平" if abs(delta) <= RELATION_TOLERANCE else side
        text = (f"{a}在{b}的{rel_word.zh[0]}" if passed
                else f"{a}应在{b}的{rel_word.zh[0]}，实际在{actual}")
    else:
        actual = ("level with it" if abs(delta) <= RELATION_TOLERANCE
                  else _SIDE_WORDS["en"][(axis, 1 if delta > 0 else -1)])
        subject_is = "it is" if subj_group.count == 1 else "they are"
        text = (f"{a} {rel_word.en[0]} {b}" if passed
                else f"expected {a} {rel_word.en[0]} {b}, but {subject_is} {actual}")
    return ConstraintResult("relation", passed, text, groups)


def _background_result(spec: SceneSpec, found: str, lang: str) -> ConstraintResult:
    want = vocab.by_id(vocab.BACKGROUNDS, spec.background)
    got = vocab.by_id(vocab.BACKGROUNDS, found)
    passed = found == spec.background
    if lang == "zh":
        text = f"背景是{want.zh[0]}" if passed else f"背景应为{want.zh[0]}，实际为{got.zh[0]}"
    else:
        text = (f"{want.en[0]} background" if passed
                else f"expected a {want.en[0]} background, found {got.en[0]}")
    return ConstraintResult("background", passed, text, ())


def check(spec: SceneSpec, background: str, detections: tuple[Detection, ...],
          lang: str = "en") -> Verdict:
    """Judge already-detected objects against ``spec``."""
    results = [_count_result(i, g, detections, lang) for i, g in enumerate(spec.groups)]
    results += [_relation_result(r, spec, detections, lang) for r in spec.relations]
    if spec.background is not None:
        results.append(_background_result(spec, background, lang))
    return Verdict(all(r.passed for r in results), tuple(results), detections, background, lang)


def verify(image: Image.Image | np.ndarray, spec: SceneSpec, lang: str = "en") -> Verdict:
    """Detect objects in ``image`` and judge them against ``spec``."""
    background, detections = detect(image)
    return check(spec, background, tuple(detections), lang)
