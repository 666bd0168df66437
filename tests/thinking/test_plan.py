from huajia.thinking.plan import plan_prompt


def test_relations_put_groups_on_their_sides():
    plan = plan_prompt("two red circles left of a blue square")
    left, right = plan.regions
    assert left.caption == "two red circles" and right.caption == "a blue square"
    assert left.box[2] <= right.box[0]


def test_above_below_split_vertically_in_chinese():
    plan = plan_prompt("一个红色圆形在一个蓝色正方形的下方")
    assert plan.lang == "zh"
    circle = next(r for r in plan.regions if "圆" in r.caption)
    square = next(r for r in plan.regions if "正方形" in r.caption)
    assert circle.box[1] >= square.box[3]


def test_unrelated_groups_get_bands_and_unknown_prompts_fall_back():
    plan = plan_prompt("a red circle and a green star and a blue triangle")
    assert len(plan.regions) == 3 and plan.spec is not None
    fallback = plan_prompt("a castle on a hill at sunset", fallback_bands=3)
    assert fallback.spec is None and len(fallback.regions) == 3
    assert all(r.caption == "a castle on a hill at sunset" for r in fallback.regions)
    assert "castle" in fallback.unparsed


def test_prompts_typed_as_users_type_them_get_the_worlds_plan():
    plan = plan_prompt("could you put a red circle on the left and a blue square on the right?")
    assert plan.spec is not None and plan.planner != "bands"
    circle, square = (next(r for r in plan.regions if word in r.caption)
                      for word in ("circle", "square"))
    assert circle.box[2] <= square.box[0]
    zh = plan_prompt("左边一个方块，右边一个圆")
    assert zh.spec is not None and len(zh.regions) == 2
