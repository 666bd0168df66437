from dataclasses import replace

import numpy as np
import pytest

from huajia.errors import HuajiaError
from huajia.world import captions, sampler
from huajia.world.parser import parse, read_prompt
from huajia.world.spec import ObjectGroup, Relation, SceneSpec


def _partial(spec: SceneSpec, rng: np.random.Generator) -> SceneSpec:
    """Leave attributes out at random, as prompts do."""
    groups = tuple(replace(g, size=g.size if rng.random() < 0.5 else None,
                           texture=g.texture if rng.random() < 0.5 else None,
                           colour=g.colour if rng.random() < 0.8 else None,
                           count=g.count if rng.random() < 0.9 else None)
                   for g in spec.groups)
    return SceneSpec(groups, spec.relations, spec.background if rng.random() < 0.5 else None)


@pytest.mark.parametrize("template", captions.TEMPLATES, ids=lambda t: t.id)
def test_round_trip_every_template(template, rng):
    for _ in range(150):
        spec = sampler.sample_spec(rng, "eval")
        for candidate in (spec, _partial(spec, rng)):
            text = captions.caption(candidate, template, rng)
            parsed = parse(text)
            assert parsed.unparsed == (), text
            assert parsed.spec == candidate, text
            assert parsed.lang == template.lang


def test_issue_examples():
    en = parse("two red circles left of a blue square")
    zh = parse("一个蓝色正方形左边有两个红色圆形")
    expected = SceneSpec((ObjectGroup("circle", 2, "red"), ObjectGroup("square", 1, "blue")),
                         (Relation(0, "left_of", 1),))
    assert en.spec == expected and zh.spec == expected
    assert zh.lang == "zh" and en.lang == "en"


def test_equality_ignores_order_and_phrasing():
    a = SceneSpec((ObjectGroup("circle"), ObjectGroup("star")), (Relation(0, "left_of", 1),))
    b = SceneSpec((ObjectGroup("star"), ObjectGroup("circle")), (Relation(0, "right_of", 1),))
    assert a == b and hash(a) == hash(b)
    assert a != SceneSpec(a.groups, (Relation(0, "right_of", 1),))


def test_unknown_words_are_reported_not_dropped():
    parsed = parse("a magenta circle next to a dog")
    assert "magenta" in parsed.unparsed and "dog" in parsed.unparsed
    assert parse("一个紫红色的圆形").unparsed  # 紫红 is not a world colour
    assert parse("a red").unparsed == ("a", "red")  # dangling modifiers
    assert parse("a white circle").unparsed == ("white",)  # background-only colour


def test_references_reuse_groups():
    parsed = parse("a red circle left of a blue square and a green star above the blue square")
    assert len(parsed.spec.groups) == 3 and len(parsed.spec.relations) == 2


def test_bare_plural_means_two_or_more():
    assert parse("red circles").spec.groups[0].count is None
    assert parse("几个红色圆形").spec.groups[0].count is None


def test_full_width_and_case_are_normalised():
    assert parse("Two RED Circles").spec == parse("two red circles").spec
    assert parse("两个红色圆形，背景是白色").spec.background == "white"


@pytest.mark.parametrize("text", ["", "   ", "a magenta circle", "the sky"])
def test_read_prompt_errors_are_one_line(text):
    with pytest.raises(HuajiaError) as info:
        read_prompt(text)
    assert "\n" not in str(info.value)
