"""The shapes world's vocabulary: every concept with its English and Chinese names.

This file is data only. Concepts marked ``held_out`` exist in the world (the renderer draws them,
the verifier detects them, the parser reads them) but the base training data never shows them, so
that a LoRA can teach them later.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Concept:
    """One word of the world: its canonical id, English forms and Chinese forms."""

    id: str
    en: tuple[str, ...]  # first entry is the canonical singular
    zh: tuple[str, ...]  # first entry is the canonical form
    held_out: bool = False
    en_plural: str = ""


@dataclass(frozen=True)
class Colour(Concept):
    rgb: RGB = (0, 0, 0)


SHAPES: tuple[Concept, ...] = (
    Concept("circle", ("circle", "disc", "round shape"), ("圆形", "圆"), en_plural="circles"),
    Concept("square", ("square", "box"), ("正方形", "方块"), en_plural="squares"),
    Concept("triangle", ("triangle",), ("三角形",), en_plural="triangles"),
    Concept("star", ("star",), ("星形", "五角星"), en_plural="stars"),
    Concept("hexagon", ("hexagon",), ("六边形",), held_out=True, en_plural="hexagons"),
)

COLOURS: tuple[Colour, ...] = (
    Colour("red", ("red",), ("红色", "红"), rgb=(220, 30, 35)),
    Colour("orange", ("orange",), ("橙色", "橙"), rgb=(245, 135, 20)),
    Colour("yellow", ("yellow",), ("黄色", "黄"), rgb=(245, 215, 30)),
    Colour("green", ("green",), ("绿色", "绿"), rgb=(40, 165, 60)),
    Colour("cyan", ("cyan", "teal"), ("青色", "青"), rgb=(20, 190, 200)),
    Colour("blue", ("blue",), ("蓝色", "蓝"), rgb=(35, 75, 215)),
    Colour("purple", ("purple", "violet"), ("紫色", "紫"), rgb=(140, 50, 190)),
    Colour("pink", ("pink",), ("粉色", "粉红色", "粉"), rgb=(245, 120, 185)),
    Colour("brown", ("brown",), ("棕色", "褐色", "棕"), rgb=(130, 75, 35)),
    Colour("black", ("black",), ("黑色", "黑"), rgb=(25, 25, 25)),
)

BACKGROUNDS: tuple[Colour, ...] = (
    Colour("white", ("white",), ("白色", "白"), rgb=(255, 255, 255)),
    Colour("gray", ("gray", "grey", "light gray", "light grey"), ("灰色", "浅灰色", "灰"),
           rgb=(212, 212, 212)),
    Colour("beige", ("beige", "cream"), ("米色", "米黄色"), rgb=(242, 232, 205)),
)

TEXTURES: tuple[Concept, ...] = (
    Concept("solid", ("solid", "plain"), ("纯色", "实心")),
    Concept("striped", ("striped", "stripy"), ("条纹", "条纹的", "斜条纹")),
    Concept("dotted", ("dotted", "polka-dot", "spotted"), ("圆点", "波点", "点点")),
    Concept("checkered", ("checkered", "chequered", "checked"), ("格子", "棋盘格"),
            held_out=True),
)

SIZES: tuple[Concept, ...] = (
    Concept("small", ("small", "little", "tiny"), ("小", "小的", "小号")),
    Concept("medium", ("medium", "medium-sized", "mid-sized"), ("中等", "中等大小的", "中号")),
    Concept("large", ("large", "big", "huge"), ("大", "大的", "大号")),
)

RELATIONS: tuple[Concept, ...] = (
    Concept("left_of", ("left of", "to the left of", "on the left of"), ("左边", "左侧", "左面")),
    Concept("right_of", ("right of", "to the right of", "on the right of"),
            ("右边", "右侧", "右面")),
    Concept("above", ("above", "over", "on top of"), ("上方", "上面", "上边")),
    Concept("below", ("below", "under", "beneath", "underneath"), ("下方", "下面", "下边")),
)

# The inverse of each relation: "A left of B" is "B right of A".
INVERSE_RELATION = {"left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above"}

# Radius of each size as a fraction of the canvas side (every shape fits a 2r x 2r box).
SIZE_RADIUS = {"small": 0.095, "medium": 0.13, "large": 0.175}

EN_NUMBERS = {1: ("a", "one", "an"), 2: ("two",), 3: ("three",), 4: ("four",)}
ZH_NUMBERS = {1: ("一",), 2: ("两", "二"), 3: ("三",), 4: ("四",)}
MAX_COUNT = 4
# how users say a count without a bare number
EN_QUANTIFIERS = {"single": 1, "a single": 1, "one single": 1, "a lone": 1, "a pair of": 2,
                  "pair of": 2, "a couple of": 2, "couple of": 2, "a trio of": 3}
ZH_MEASURE_WORDS = ("个", "只", "枚", "颗")
ZH_QUANTIFIERS = {"单个": 1, "一对": 2, "一双": 2}

# (shape, colour) pairs never rendered in the training split: evaluation uses them to test
# composition the model never saw.
HELD_OUT_COMBOS: frozenset[tuple[str, str]] = frozenset({
    ("circle", "brown"), ("square", "pink"), ("triangle", "orange"), ("star", "purple"),
})


def by_id(concepts: tuple[Concept, ...], concept_id: str) -> Concept:
    for concept in concepts:
        if concept.id == concept_id:
            return concept
    raise KeyError(concept_id)


def ids(concepts: tuple[Concept, ...], include_held_out: bool = True) -> tuple[str, ...]:
    return tuple(c.id for c in concepts if include_held_out or not c.held_out)


def colour_rgb(colour_id: str) -> RGB:
    concept = by_id(COLOURS + BACKGROUNDS, colour_id)
    assert isinstance(concept, Colour)
    return concept.rgb
