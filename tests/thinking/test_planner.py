"""The planners: the world's, bands, and a layout asked of a chat model (a fake OpenAI-compatible
endpoint here answers plans, good and bad, and reflections), checked, with a bad or late answer
a thought and the bands plan; over the CLI on a tiny SD 1.5 and a tiny Flux."""

import json
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
from tests.conftest import JsonEndpoint, local_endpoint

from huajia.engine.engine import Engine
from huajia.engine.expansion import LlmSettings
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError
from huajia.thinking.critics import VLM_PROTOCOL, ShapesCritic
from huajia.thinking.loop import Thinker, ThinkOptions
from huajia.thinking.plan import plan_prompt
from huajia.thinking.planner import LAYOUT_SYSTEM, LayoutRejected, make_plan, read_layout

FRUIT = {"background": "a meadow", "regions": [
    {"box": [0, 0, 0.5, 1], "caption": "a red apple"},
    {"box": [0.5, 0, 1, 1], "caption": "a green pear"}]}


def _layout_for(prompt: str) -> str:
    """What the fake layout model answers for ``prompt``."""
    if "slow" in prompt:
        time.sleep(2)
    if "garbage" in prompt:
        return "I would put the castle somewhere nice."
    if "huge" in prompt:
        return json.dumps({"background": "", "regions": [{"box": [0, 0, 1.5, 1],
                                                          "caption": "a huge castle"}]})
    if "苹果" in prompt:  # answers in English to a Chinese prompt
        return json.dumps(FRUIT)
    if "circle" in prompt or "圆形" in prompt:  # the world's own exact layout
        plan = plan_prompt(prompt)
        return "Here is the plan: " + json.dumps({"background": "", "regions": [
            {"box": list(r.box), "caption": r.caption} for r in plan.regions]})
    return json.dumps(FRUIT)


class _FakeChat(JsonEndpoint):
    """Plans for the layout system prompt, a score of 90 for every reflection."""

    def do_POST(self):  # noqa: N802
        body = self.body()
        system = body["messages"][0]["content"]
        if system == LAYOUT_SYSTEM:
            content = _layout_for(body["messages"][1]["content"])
        else:
            assert system == VLM_PROTOCOL
            content = json.dumps({"score": 90, "observation": "looks right",
                                  "revised_caption": ""})
        self.chat(content)


@pytest.fixture(scope="module")
def chat_url():
    yield from local_endpoint(_FakeChat)


def _llm(url: str, timeout: float = 20.0) -> LlmSettings:
    return LlmSettings(url, "fake-planner", None, timeout)


def test_an_llm_layout_becomes_the_plan(chat_url):
    planned = make_plan("an apple left of a pear in a meadow", "llm", _llm(chat_url))
    plan = planned.plan
    assert planned.note is None and plan.planner == "llm" and plan.background == "a meadow"
    assert [(r.caption, r.box) for r in plan.regions] == [
        ("a red apple", (0.0, 0.0, 0.5, 1.0)), ("a green pear", (0.5, 0.0, 1.0, 1.0))]
    assert plan.spec is None  # the world cannot read fruit: only clip or vlm judge this plan
    with pytest.raises(HuajiaError, match="shapes critic"):
        ShapesCritic().check(plan)


@pytest.mark.parametrize("prompt, reason", [
    ("a castle, garbage", "no JSON object"),
    ("a huge castle", "leaves the canvas"),
    ("一个苹果在一个梨的左边", "not in the prompt's language"),
    ("a slow castle", "no answer within 0.5 s"),
])
def test_a_bad_or_late_layout_is_a_note_and_bands(chat_url, prompt, reason):
    planned = make_plan(prompt, "llm", _llm(chat_url, timeout=0.5))
    assert reason in planned.note
    assert planned.plan.planner == "bands" and len(planned.plan.regions) == 3
    assert all(r.caption == prompt for r in planned.plan.regions)


def test_an_unreachable_endpoint_is_a_note_too():
    planned = make_plan("a castle", "llm", _llm("http://127.0.0.1:9/v1", timeout=0.5))
    assert "no usable answer" in planned.note and planned.plan.planner == "bands"


@pytest.mark.parametrize("answer, reason", [
    ('{"regions": []}', "1 to 8 regions"),
    (json.dumps({"regions": [FRUIT["regions"][0]] * 9}), "1 to 8 regions"),
    ('{"regions": [{"box": [0.5, 0, 0.5, 1], "caption": "a"}]}', "degenerate"),
    ('{"regions": [{"box": [0, 0, 1], "caption": "a"}]}', "four numbers"),
    ('{"regions": [{"box": [0, 0, 1, 1], "caption": " "}]}', "caption is empty"),
    ('{"regions": [{"box": [0, 0, 1, 1], "caption": "a"}], "background": 3}', "not text"),
    ('{"regions": [{"box": [0, 0, 1, 1], "caption": "a"]}', "does not parse"),
])
def test_layouts_are_checked(answer, reason):
    with pytest.raises(LayoutRejected, match=reason):
        read_layout("a castle", answer)


def test_planners_are_chosen_and_checked(chat_url):
    world = "two red circles left of a blue square"
    assert make_plan(world).plan.planner == "world"  # auto: the world reads it
    assert make_plan("a castle").plan.planner == "bands"  # auto, no LLM configured
    assert make_plan("a castle", "auto", _llm(chat_url)).plan.planner == "llm"
    assert make_plan(world, "bands").plan.planner == "bands"
    with pytest.raises(HuajiaError, match="--llm-url"):
        make_plan("a castle", "llm")
    with pytest.raises(HuajiaError, match="world planner cannot read"):
        make_plan("a castle at dusk", "world")
    with pytest.raises(HuajiaError, match="planner"):
        ThinkOptions(planner="oracle")


@pytest.mark.parametrize("prompt", ["two red circles left of a blue square",
                                    "一个红色圆形在一个蓝色正方形的上面"])
def test_the_world_layout_through_the_llm_seam_thinks_as_the_world(chat_url, sd_dir, prompt):
    """Fed the world's own layout, the LLM planner's plan is the world's: same regions, same
    object groups, so the shapes critic judges it and the loop paints the same picture."""
    world, llm = make_plan(prompt, "world").plan, make_plan(prompt, "llm", _llm(chat_url)).plan
    assert [(r.box, r.caption, r.groups) for r in llm.regions] == \
        [(r.box, r.caption, r.groups) for r in world.regions] and llm.spec == world.spec
    engine = Engine(str(sd_dir))
    request = GenerationRequest(prompt, seed=2, steps=4, width=64, height=64)
    options = ThinkOptions(pauses=1, restarts=1, max_repaints=1, compose_tries=1, part_steps=2)
    results = [Thinker(engine, ShapesCritic(), replace(options, planner=planner),
                       _llm(chat_url)).think(request) for planner in ("world", "llm")]
    assert np.array_equal(*(np.asarray(r.image) for r in results))
    assert [t.observation for t in results[0].thoughts] == \
        [t.observation for t in results[1].thoughts]


def huajia(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "huajia", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("name", ["sd15", "flux"])
def test_must_show_think_with_an_llm_plan_and_a_vlm_critic(chat_url, family_dirs, name,
                                                           tmp_path):
    done = huajia("think", "an apple left of a pear in a meadow", "--planner", "llm",
                  "--llm-url", chat_url, "--llm-model", "M", "--critic", "vlm",
                  "--vlm-url", chat_url, "--vlm-model", "M", "--steps", "4", "--seed", "1",
                  "--model", str(family_dirs[name]), "--size", "64x64", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "thoughts.json").read_text(encoding="utf-8"))
    assert data["planner"] == "llm" and data["background"] == "a meadow"
    assert [(p["caption"], p["box"]) for p in data["plan"]] == [
        ("a red apple", [0, 0, 0.5, 1]), ("a green pear", [0.5, 0, 1, 1])]
    assert data["thoughts"][0]["phase"] == "plan" and "a red apple" in \
        data["thoughts"][0]["observation"]
    assert data["satisfied"] and any(t["score"] == 90 for t in data["thoughts"])


def test_the_cli_refuses_a_planner_it_cannot_use(sd_dir, tmp_path):
    done = huajia("think", "a castle", "--planner", "llm", "--critic", "vlm", "--vlm-url",
                  "http://127.0.0.1:9/v1", "--vlm-model", "M", "--model", str(sd_dir),
                  "--out", str(tmp_path))
    assert done.returncode == 2 and "--llm-url" in done.stderr.strip().splitlines()[-1]
