from huajia.world import sampler
from huajia.world.parser import parse
from huajia.world.render import render
from huajia.world.spec import ObjectGroup, Relation, SceneSpec
from huajia.world.verifier import verify


def _draw(spec: SceneSpec, seed: int = 0):
    return render(sampler.scene_for(spec, seed))


def test_matching_picture_passes():
    spec = parse("two red circles left of a blue square").spec
    verdict = verify(_draw(spec), spec)
    assert verdict.passed and verdict.score == 1.0


def test_wrong_count_is_explained_in_english_and_chinese():
    one = SceneSpec((ObjectGroup("circle", 1, "red"), ObjectGroup("circle", 1, "blue")))
    image = _draw(one)
    en = parse("two red circles")
    verdict = verify(image, en.spec, "en")
    assert not verdict.passed
    assert verdict.explain() == "expected 2 red circles, found 1; also saw 1 blue circle"
    zh = parse("两个红色圆形")
    assert verify(image, zh.spec, "zh").explain() == "应有2个红色圆形，只找到1个；另有1个蓝色圆形"


def test_wrong_side_is_explained():
    drawn = SceneSpec((ObjectGroup("circle", 1, "red"), ObjectGroup("square", 1, "blue")),
                      (Relation(0, "right_of", 1),))
    asked = parse("a red circle left of a blue square").spec
    verdict = verify(_draw(drawn), asked)
    relation = [c for c in verdict.constraints if c.kind == "relation"][0]
    assert not relation.passed
    assert relation.explanation == ("expected red circle left of blue square, "
                                    "but it is to its right")
    zh = verify(_draw(drawn), asked, "zh").constraints[-1].explanation
    assert zh == "红色圆形应在蓝色正方形的左边，实际在右边"


def test_unspecified_attributes_are_not_checked():
    drawn = SceneSpec((ObjectGroup("star", 1, "green", "striped", "large"),))
    assert verify(_draw(drawn), parse("a star").spec).passed
    assert not verify(_draw(drawn), parse("a dotted star").spec).passed


def test_background_constraint():
    drawn = SceneSpec((ObjectGroup("square", 1, "red"),), background="beige")
    assert verify(_draw(drawn), parse("a red square on a beige background").spec).passed
    failed = verify(_draw(drawn), parse("a red square on a white background").spec)
    assert failed.explain() == "expected a white background, found beige"


def test_failed_counts_get_partial_credit_for_coming_close():
    image = _draw(SceneSpec((ObjectGroup("circle", 2, "red"),)))

    def credit(prompt: str) -> float:
        return verify(image, parse(prompt).spec).constraints[0].credit

    assert credit("two red circles") == 1.0
    assert abs(credit("three red circles") - 2 / 3) < 1e-9  # two of the three are there
    assert credit("one red circle") == 0.5  # the right one, and one too many
    assert credit("two blue circles") == 0.5  # near misses: the colour is wrong
    assert credit("two red squares") == 0.5  # near misses: the shape is wrong
    assert credit("two green stars") == 0.0
