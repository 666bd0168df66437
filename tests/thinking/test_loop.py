import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from tests.conftest import loud_lora

from huajia.engine.engine import Engine
from huajia.engine.request import GenerationRequest
from huajia.thinking import loop
from huajia.thinking.critics import ShapesCritic
from huajia.thinking.loop import Thinker, ThinkOptions, ThinkResult, Thought, stream
from huajia.thinking.timeline import timeline, write_thoughts


@pytest.fixture(scope="module")
def engine(sd_dir):
    return Engine(str(sd_dir))


def _request(prompt="two red circles left of a blue square"):
    return GenerationRequest(prompt, seed=3, steps=6, width=64, height=64)


def test_thinks_pauses_reflects_and_counts_nfe(engine, tmp_path):
    seen = []
    result = Thinker(engine, ShapesCritic(), ThinkOptions(pauses=3, max_repaints=1,
                                                          restarts=0)).think(
        _request(), on_thought=seen.append)
    phases = [t.phase for t in result.thoughts]
    assert phases[0] == "plan" and phases.count("pause") == 3 * 2 and phases[-1] == "stop"
    assert "reflect" in phases and seen == result.thoughts
    assert result.nfe > 6 * 2  # regional calls cost more than plain CFG
    assert result.image.size == (64, 64)
    assert not engine.pipe.unet._forward_hooks and not engine.pipe.unet._forward_pre_hooks
    data = json.loads(write_thoughts(result, tmp_path / "t.json").read_text(encoding="utf-8"))
    assert data["thoughts"][1]["phase"] == "pause" and data["nfe"] == result.nfe
    assert timeline(result).size[0] > 400


def test_a_bad_first_look_restarts_from_fresh_noise(engine):
    options = ThinkOptions(pauses=2, max_repaints=0, restarts=2)
    result = Thinker(engine, ShapesCritic(), options).think(_request())
    phases = [t.phase for t in result.thoughts]
    # the tiny random model paints noise: every first look fails, so both restarts are used
    fresh = [t for t in result.thoughts if t.phase == "restart" and "fresh noise" in t.decision]
    assert len(fresh) == 2 and phases.index("restart") == 1
    assert phases.count("pause") == 2 * 2  # the last attempt pauses as usual
    assert f"Restarts: {phases.count('restart')}" in result.infotext  # going back counts too
    plain = Thinker(engine, ShapesCritic(), replace(options, restarts=0)).think(_request())
    assert result.nfe > plain.nfe
    again = Thinker(engine, ShapesCritic(), options).think(_request())
    assert np.array_equal(np.asarray(again.image), np.asarray(result.image))  # reproducible
    tight = Thinker(engine, ShapesCritic(), replace(options, budget=plain.nfe)).think(_request())
    assert [t.phase for t in tight.thoughts].count("restart") == 0  # no room in the budget


def test_budget_stops_repainting(engine):
    result = Thinker(engine, ShapesCritic(), ThinkOptions(pauses=0, steer=False, budget=1,
                                                          max_repaints=3)).think(_request())
    assert [t.phase for t in result.thoughts].count("repaint") == 0
    assert any("budget" in t.observation for t in result.thoughts)


def test_stream_yields_thoughts_then_the_result(engine):
    items = list(stream(Thinker(engine, ShapesCritic(), ThinkOptions(pauses=1, max_repaints=0)),
                        _request("一个红色圆形")))
    assert all(isinstance(i, Thought) for i in items[:-1]) and isinstance(items[-1], ThinkResult)


def test_guidance_must_be_above_one(engine):
    from huajia.errors import HuajiaError

    with pytest.raises(HuajiaError, match="guidance above 1"):
        Thinker(engine, ShapesCritic()).think(GenerationRequest("a red circle", guidance=1.0))


class _ScriptedCritic:
    """Scores whole pictures from a script, one score per look, then 100."""

    name = "scripted"

    def __init__(self, scores):
        self.scores = list(scores)

    def inspect(self, image, plan, threshold):
        from huajia.thinking.critics import Critique, RegionReport

        score = self.scores.pop(0) if self.scores else 100.0
        reports = tuple(RegionReport(r.index, score, f"scripted {score}") for r in plan.regions)
        return Critique(reports, score >= threshold, f"scripted {score}")


def test_when_every_start_looks_bad_the_best_first_look_is_painted_again(engine):
    options = ThinkOptions(pauses=2, max_repaints=0, restarts=2)
    result = Thinker(engine, _ScriptedCritic([30, 45, 10]), options).think(_request())
    restarts = [t for t in result.thoughts if t.phase == "restart"]
    assert len(restarts) == 3 and "start 2" in restarts[-1].decision
    # going back to start 2 repaints exactly that start: same picture as a run that kept it
    kept = Thinker(engine, _ScriptedCritic([30, 100]), replace(options, restarts=1)).think(
        _request())
    assert np.array_equal(np.asarray(kept.image), np.asarray(result.image))
    zh = Thinker(engine, _ScriptedCritic([30, 45, 10]), options).think(_request("两个红色圆形"))
    assert "回到第 2 次起稿" in [t for t in zh.thoughts if t.phase == "restart"][-1].decision
    assert {t.decision for t in zh.thoughts if t.phase == "reflect"} == {"保留"}
    assert zh.thoughts[-1].observation == "完成"
    titles = [frame.title for frame in zh.frames]  # the timeline speaks the prompt's language
    assert titles[:3] == ["第 3 步放弃"] * 3 and titles[-1] == "画完"
    assert [frame.title for frame in result.frames][-1] == "finished"


def test_a_region_that_repeats_the_prompt_costs_no_extra_evaluations(engine):
    options = ThinkOptions(pauses=1, max_repaints=0, restarts=0)
    simple = Thinker(engine, ShapesCritic(), options).think(_request("a red circle"))
    assert len(simple.plan.regions) == 1 and simple.nfe == 6 * 2  # as plain CFG
    two = Thinker(engine, ShapesCritic(), replace(options, region_strength=0.7)).think(_request())
    assert two.nfe == 6 * (2 + 2)  # each of the two regions has its own sub-caption


def test_dormant_regions_cost_nothing_until_a_look_wakes_them(engine):
    options = ThinkOptions(pauses=1, max_repaints=0, restarts=0)  # one look, after step 3 of 6
    content = Thinker(engine, _ScriptedCritic([100]), options).think(_request())
    assert len(content.plan.regions) == 2 and content.nfe == 6 * 2  # never woken: plain CFG
    woken = Thinker(engine, ShapesCritic(), replace(options, steer=True)).think(_request())
    # the random model paints noise: the look finds both regions wrong and wakes them
    assert woken.nfe == 3 * 2 + 3 * (2 + 2)
    assert "sub-caption once a look" in woken.thoughts[0].decision
    assert any("stronger guidance" in t.decision for t in woken.thoughts if t.phase == "pause")


def test_without_steering_a_look_only_notes_what_to_repaint(engine):
    # steer is off by default
    options = ThinkOptions(pauses=1, max_repaints=1, restarts=0, compose_tries=0)
    result = Thinker(engine, ShapesCritic(), options).think(_request())
    pauses = [t for t in result.thoughts if t.phase == "pause"]
    assert pauses and all(t.decision == "keep going; fix it after the end" for t in pauses)
    assert "repaint a wrong region" in result.thoughts[0].decision
    composing = Thinker(engine, ShapesCritic(), replace(options, compose_tries=1))
    assert "sub-caption alone" in composing.think(_request()).thoughts[0].decision
    assert '\\"steer\\":false' in result.infotext  # in the recorded 'Think options'
    repaint_cost = result.nfe - 6 * 2  # the painting itself ran as plain CFG
    assert repaint_cost > 0 and "repaint" in [t.phase for t in result.thoughts]


def test_a_wrong_region_is_painted_alone_and_pasted_in(engine, monkeypatch):
    options = ThinkOptions(pauses=0, max_repaints=2, restarts=0, compose_tries=2)
    result = Thinker(engine, ShapesCritic(), options).think(_request())
    composed = [t for t in result.thoughts if t.phase == "compose"]
    regions = len(result.plan.regions)
    # the tiny random model paints noise: every region fails, each part takes both tries, and
    # as no part comes out right, the second round paints the regions alone again
    assert sorted(t.region for t in composed) == sorted(list(range(regions)) * 2)
    assert all("alone" in t.observation and t.score is not None for t in composed)
    assert result.nfe == 2 * 6 + 2 * regions * 2 * (2 * 6)  # first pass + 2 rounds of parts
    after = [f for f in result.frames if f.title.startswith("after composing")]
    assert len(after) == 2 and {t.phase for t in after[0].thoughts} == {"compose", "repaint"}
    repaint_only = Thinker(engine, ShapesCritic(), replace(options, compose_tries=0))
    assert "compose" not in [t.phase for t in repaint_only.think(_request()).thoughts]
    # on a canvas whose background is not plain nothing can be cut out: repaint instead
    monkeypatch.setattr(loop, "plain_background", lambda pixels: False)
    noisy = Thinker(engine, ShapesCritic(), options).think(_request())
    assert "compose" not in [t.phase for t in noisy.thoughts]
    assert "repaint" in [t.phase for t in noisy.thoughts]


def test_thinking_paints_with_the_requested_lora(engine, tmp_path):
    from huajia.engine.request import LoraSpec

    lora = loud_lora(engine.source.location, tmp_path)
    thinker = Thinker(engine, ShapesCritic(), ThinkOptions(pauses=1, max_repaints=0,
                                                           restarts=0, compose_tries=0))
    plain = thinker.think(_request())
    taught = thinker.think(replace(_request(), loras=(LoraSpec(str(lora)),)))
    assert "Lora" in taught.infotext and "Lora" not in plain.infotext
    assert not np.array_equal(np.asarray(plain.image), np.asarray(taught.image))
    assert np.array_equal(np.asarray(thinker.think(_request()).image), np.asarray(plain.image))


def test_each_picture_thinks_about_its_own_expansion_and_gets_the_hires_fix(engine):
    from huajia.engine.infotext import parse_infotext

    request = replace(_request("a {red|blue} circle"), n=2, expand="wildcards", hires_scale=1.5,
                      hires_steps=2)
    results = Thinker(engine, ShapesCritic(), ThinkOptions(pauses=1, max_repaints=0,
                                                           restarts=0)).think_all(request)
    infos = [parse_infotext(r.infotext) for r in results]
    assert [i["Template"] for i in infos] == ["a {red|blue} circle"] * 2
    assert all(i["Prompt"] in ("a red circle", "a blue circle") for i in infos)
    assert [r.seed for r in results] == [3, 4] and all(i["Hires upscale"] == "1.5" for i in infos)
    assert all(r.image.size == (96, 96) for r in results)


def test_parts_paint_at_part_steps_and_the_stages_are_timed(engine):
    options = ThinkOptions(pauses=0, max_repaints=1, restarts=0, compose_tries=1, part_steps=2)
    result = Thinker(engine, ShapesCritic(), options).think(_request())
    regions = len(result.plan.regions)
    assert result.nfe == 2 * 6 + regions * 2 * 2  # first pass + one 2-step part per region
    timings = result.timings
    assert timings["compose_nfe"] == regions * 2 * 2 and timings["paint_nfe"] == 2 * 6
    stages = sum(v for k, v in timings.items() if k.endswith("_s") and k != "total_s")
    assert 0 < stages <= timings["total_s"]


def test_the_first_look_comes_when_asked_and_old_infotexts_keep_their_options():
    from huajia.thinking.options import options_from_infotext
    from huajia.thinking.run import pause_steps

    assert min(pause_steps(ThinkOptions(pauses=3), 20)) == 7
    assert min(pause_steps(ThinkOptions(pauses=3, first_look=0.2), 20)) == 4
    assert pause_steps(ThinkOptions(pauses=1, first_look=0.8), 20) == {16}
    old = 'a\nSteps: 6, Think options: "{\\"pauses\\":1,\\"compose_tries\\":2}", Critic: shapes'
    options, critic = options_from_infotext(old)
    assert (options.part_steps, options.first_look, options.compose_tries) == (0, 0.35, 2)
    # joint-attention regions were on for every step, with no base blend, before they were
    # recorded; new runs record theirs
    assert (options.region_steps, options.base_ratio) == (1.0, 0.0)


def test_thinking_guides_every_step_whatever_the_cutoff(engine):
    options = ThinkOptions(pauses=1, max_repaints=0, restarts=0, compose_tries=0)
    cut = Thinker(engine, ShapesCritic(), options).think(replace(_request(), cfg_cutoff=0.3))
    full = Thinker(engine, ShapesCritic(), options).think(_request())
    assert np.array_equal(np.asarray(cut.image), np.asarray(full.image))
    assert "CFG cutoff" not in cut.infotext


def test_a_repaint_changes_the_picture_only_inside_its_mask():
    from huajia.thinking.loop import only_inside
    from huajia.thinking.regional import soft_mask

    before, after = Image.new("RGB", (64, 64), "white"), Image.new("RGB", (64, 64), (200, 0, 90))
    mixed = np.asarray(only_inside(before, after, soft_mask((0.5, 0, 1, 1), 8, 8, feather=0.01)))
    assert (mixed[:, :28] == 255).all() and (mixed[:, 36:] == (200, 0, 90)).all()
