import json

import pytest
from PIL import Image

from huajia.errors import HuajiaError
from huajia.evaluation.generators import OracleGenerator, RandomGenerator, make_generator
from huajia.evaluation.prompts import TASKS, shapes_eval_prompts
from huajia.evaluation.report import failure_sheet, write_json
from huajia.evaluation.shapes_eval import run_shapes_eval
from huajia.world import captions
from huajia.world.parser import parse


def test_prompt_set_shape():
    prompts = shapes_eval_prompts()
    assert len(prompts) == 700 and {p.task for p in prompts} == set(TASKS)
    assert {p.lang for p in prompts} == {"en", "zh"}
    assert len({p.id for p in prompts}) == len(prompts)
    assert prompts == shapes_eval_prompts()  # fixed


def test_prompts_are_held_out_and_base_concepts_only():
    train_prefixes = tuple(t.prefix for t in captions.templates(split="train") if t.prefix)
    for prompt in shapes_eval_prompts():
        assert parse(prompt.text).spec == prompt.spec
        assert not prompt.text.startswith(train_prefixes)
        for group in prompt.spec.groups:
            assert group.shape != "hexagon" and group.texture != "checkered"


def test_oracle_is_faithful_and_random_is_not():
    prompts = shapes_eval_prompts(specs_per_task=6)
    oracle = run_shapes_eval(OracleGenerator(), prompts, images_per_prompt=2)
    chance = run_shapes_eval(RandomGenerator(), prompts, images_per_prompt=2)
    assert oracle.overall >= 0.99
    assert chance.overall <= 0.25
    assert set(oracle.tasks) == set(TASKS)


def test_reports(tmp_path):
    prompts = shapes_eval_prompts(specs_per_task=2)
    result = run_shapes_eval(make_generator("random"), prompts, images_per_prompt=1)
    data = json.loads(write_json(result, tmp_path / "r.json").read_text(encoding="utf-8"))
    assert set(data) >= {"overall", "tasks", "by_lang", "records"}
    assert abs(data["overall"] - sum(data["tasks"].values()) / len(data["tasks"])) < 1e-9
    sheet = failure_sheet(result, tmp_path / "failures.png")
    assert Image.open(sheet).size[0] > 500


def test_concept_prompts_ask_for_the_concept_and_score_as_a_task():
    from huajia.evaluation.prompts import concept_prompts

    prompts = concept_prompts("hexagon", 5)
    assert len(prompts) == 10 and {p.lang for p in prompts} == {"en", "zh"}
    for prompt in prompts:
        assert parse(prompt.text).spec == prompt.spec
        assert prompt.spec.groups[0].shape == "hexagon"
    result = run_shapes_eval(OracleGenerator(), prompts, images_per_prompt=1)
    assert result.tasks == {"hexagon": result.overall} and result.overall >= 0.9


def test_a_known_shape_can_stand_in_for_the_concept():
    """The ceiling prompts: the same colours and counts, a known shape in the hexagon's place."""
    from huajia.evaluation.prompts import concept_prompts

    hexagons, squares = concept_prompts("hexagon", 6), concept_prompts("hexagon", 6,
                                                                       stand_in="square")
    for hexagon, square in zip(hexagons, squares, strict=True):
        assert square.spec.groups[0].shape == "square"
        assert (square.spec.groups[0].colour, square.spec.groups[0].count) == (
            hexagon.spec.groups[0].colour, hexagon.spec.groups[0].count)
        assert parse(square.text).spec == square.spec
    with pytest.raises(HuajiaError, match="known shape"):
        concept_prompts("hexagon", 2, stand_in="hexagon")


def test_prompt_list_is_unchanged_since_the_task_makers_moved_to_the_world():
    """Every model ever measured was judged on these prompts: moving the makers to
    world/tasks.py (shared with RL's training prompts) must not change one of them."""
    import hashlib
    import json

    from huajia.evaluation.prompts import concept_prompts

    prompts = (shapes_eval_prompts(50) + concept_prompts("hexagon")
               + concept_prompts("hexagon", stand_in="circle"))
    text = json.dumps([(p.id, p.text, repr(p.spec)) for p in prompts], ensure_ascii=False)
    assert hashlib.sha256(text.encode()).hexdigest() == (
        "22447b94f2faf7c3d95dff3f3b126666fe97146069275ec408362164e412ecfe")


def test_best_of_n_stops_at_the_first_satisfying_sample(sd_dir):
    """The honest baseline: best-of-N stops when the critic is satisfied, as thinking does."""
    from huajia.engine.engine import Engine
    from huajia.evaluation.thinking_generators import BestOfNGenerator
    from huajia.thinking.critics import Critique, RegionReport

    class Pleased:
        name = "pleased"

        def __init__(self, after: int):
            self.after, self.calls = after, 0

        def inspect(self, image, plan, threshold):
            self.calls += 1
            ok = self.calls >= self.after
            return Critique((RegionReport(0, 100.0 if ok else 10.0, ""),), ok, "")

    engine = Engine(str(sd_dir))
    early = BestOfNGenerator(engine, Pleased(after=2), n=5, steps=2)
    early.generate(["a red circle"], [1], 64)
    assert early.nfe == [2 * 2 * 2]  # stopped at the second sample
    full = BestOfNGenerator(engine, Pleased(after=2), n=5, steps=2, early_stop=False)
    full.generate(["a red circle"], [1], 64)
    assert full.nfe == [2 * 2 * 5]
