import pytest
from PIL import Image

from huajia.errors import HuajiaError
from huajia.thinking.critics import ShapesCritic, VlmCritic, make_critic, parse_reflection
from huajia.thinking.plan import plan_prompt
from huajia.world.render import render
from huajia.world.sampler import scene_for


def test_shapes_critic_scores_regions_and_explains():
    plan = plan_prompt("two red circles left of a blue square")
    good = render(scene_for(plan.spec, 1))
    critique = ShapesCritic().inspect(good, plan, 90)
    assert critique.satisfied and all(r.score == 100 for r in critique.reports)
    wrong = render(scene_for(plan_prompt("two red circles").spec, 1))
    critique = ShapesCritic().inspect(wrong, plan, 90)
    square = critique.reports[1]
    assert not critique.satisfied and square.score == 0
    assert "expected 1 blue square, found 0" in square.observation
    with pytest.raises(HuajiaError, match="shapes critic"):
        ShapesCritic().inspect(wrong, plan_prompt("a castle"), 90)
    # a look that came close scores above one with nothing there: looks can be compared
    pair = plan_prompt("two red circles")
    half = ShapesCritic().inspect(render(scene_for(plan_prompt("a red circle").spec, 1)), pair, 90)
    none = ShapesCritic().inspect(render(scene_for(plan_prompt("a blue star").spec, 1)), pair, 90)
    assert half.reports[0].score == 50 and none.reports[0].score == 0


def test_vlm_critic_reads_json_and_survives_bad_answers(vlm_url):
    critic = VlmCritic(vlm_url, "fake-vlm")  # the default timeout: a busy machine still answers
    plan = plan_prompt("a red circle left of a blue square")
    critique = critic.inspect(Image.new("RGB", (64, 64), "white"), plan, 90)
    circle, square = critique.reports
    assert circle.score == 42 and circle.revised_caption == "a bright red circle"
    assert square.score is None and "not judged" in square.observation  # malformed → fallback
    assert not critique.satisfied


def test_vlm_timeout_and_unreachable_endpoint_fall_back(vlm_url):
    plan = plan_prompt("a slow red circle")
    slow = VlmCritic(vlm_url, "fake", timeout=0.3).inspect(Image.new("RGB", (64, 64)), plan, 90)
    assert all(r.score is None for r in slow.reports)
    dead = VlmCritic("http://127.0.0.1:9/v1", "fake", timeout=0.3)
    assert dead.inspect(Image.new("RGB", (64, 64)), plan, 90).reports[0].score is None


def test_reflection_parsing_and_critic_errors():
    assert parse_reflection('```json\n{"score": 80, "observation": "ok"}\n```')["score"] == 80
    with pytest.raises(ValueError):
        parse_reflection('{"score": 400}')
    with pytest.raises(HuajiaError, match="--vlm-url"):
        make_critic("vlm")
    with pytest.raises(HuajiaError, match="unknown critic"):
        make_critic("oracle")


def test_clip_critic_with_a_tiny_local_checkpoint(clip_dir):
    critic = make_critic("clip", clip_model=str(clip_dir))
    plan = plan_prompt("a red circle left of a blue square")
    critique = critic.inspect(Image.new("RGB", (128, 128), "white"), plan, 90)
    assert len(critique.reports) == 2
    assert all(0 <= r.score <= 100 for r in critique.reports)
