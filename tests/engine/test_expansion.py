"""Prompt expansion: wildcards (dynamicprompts), an LLM over HTTP, the world's own details."""

import pytest

from huajia.engine.engine import Engine
from huajia.engine.expansion import LlmSettings, PromptExpander, world_details
from huajia.engine.infotext import parse_infotext
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError
from huajia.world.parser import parse


def test_wildcards_are_seeded_and_use_the_built_in_and_user_folders(tmp_path):
    expander = PromptExpander()
    template = "a {red|blue} circle and a __colours__ __shapes__, {2$$small|large|striped}"
    first = [expander.expand("wildcards", template, seed).prompt for seed in range(6)]
    assert first == [expander.expand("wildcards", template, seed).prompt for seed in range(6)]
    assert len(set(first)) > 1 and all("{" not in p and "__" not in p for p in first)
    assert parse(expander.expand("wildcards", "一个__颜色__的__形状__", 0).prompt).complete
    (tmp_path / "moods.txt").write_text("calm\nbusy\n")
    mine = PromptExpander(tmp_path)
    assert mine.expand("wildcards", "a __moods__ scene", 1).prompt in ("a calm scene", "a busy scene")
    with pytest.raises(HuajiaError, match="'__colours__' has no file colours.txt"):
        mine.check("wildcards", "a __colours__ circle")
    with pytest.raises(HuajiaError, match="wildcard folder"):
        PromptExpander(tmp_path / "missing")


def test_world_details_add_what_was_left_open_and_keep_what_was_asked():
    for prompt in ("a red circle to the left of a blue square", "两个绿色三角形"):
        expanded = world_details(prompt, 5).prompt
        asked, got = parse(prompt).spec, parse(expanded).spec
        assert parse(expanded).complete and got.background is not None
        assert [(g.shape, g.count, g.colour) for g in got.groups] == \
            [(g.shape, g.count, g.colour) for g in asked.groups]
        assert got.relations == asked.relations
        assert all(g.size and g.texture for g in got.groups)
    left = world_details("a purple dragon", 0)
    assert left.prompt == "a purple dragon" and "cannot read it" in left.warnings[0]


def test_llm_expansion_and_its_fallbacks(llm_url):
    expander = PromptExpander(llm=LlmSettings(llm_url, "fake"))
    assert expander.expand("llm", "a red circle", 7).prompt == "a red circle on a beige background (seed 7)"
    bad = expander.expand("llm", "garbage", 7)
    assert bad.prompt == "garbage" and "no usable prompt" in bad.warnings[0]
    slow = PromptExpander(llm=LlmSettings(llm_url, "fake", timeout_s=0.5)).expand("llm", "slow", 1)
    assert slow.prompt == "slow" and "did not answer within 0.5 s" in slow.warnings[0]
    lenient = PromptExpander(llm=LlmSettings("http://127.0.0.1:9/v1", "fake"), strict=False)
    gone = lenient.expand("llm", "a red circle", 1)
    assert gone.prompt == "a red circle" and "could not be reached" in gone.warnings[0]
    with pytest.raises(HuajiaError, match="cannot reach the LLM"):
        PromptExpander(llm=LlmSettings("http://127.0.0.1:9/v1", "fake")).check("llm", "x")
    with pytest.raises(HuajiaError, match="needs a chat endpoint"):
        PromptExpander().check("llm", "x")


def test_engine_paints_one_expansion_per_picture_and_records_the_template(sd_dir, llm_url):
    engine = Engine(str(sd_dir), expander=PromptExpander(llm=LlmSettings(llm_url, "fake")))
    request = GenerationRequest("a {red|blue|green|pink} circle", seed=10, n=4, steps=2, width=64,
                                height=64, expand="wildcards")
    result = engine.generate(request)
    prompts = [m["Prompt"] for m in result.metadata]
    assert result.seeds == (10, 11, 12, 13) and len(result.images) == 4
    assert prompts == [m["Prompt"] for m in engine.generate(request).metadata]  # reproducible
    info = parse_infotext(result.infotexts[0])
    assert info["Prompt"] == prompts[0] and info["Template"] == "a {red|blue|green|pink} circle"
    assert info["Prompt expansion"] == "wildcards"
    llm = engine.generate(GenerationRequest("a star", seed=1, steps=2, width=64, height=64, expand="llm"))
    assert llm.metadata[0]["Prompt"] == "a star on a beige background (seed 1)"
    # micro-batched with a plain request: each keeps its own prompt
    plain, expanded = engine.generate_batch([GenerationRequest("a star", seed=1, steps=2, width=64,
                                                               height=64), request])
    assert plain.metadata[0]["Prompt"] == "a star" and len(expanded.images) == 4
