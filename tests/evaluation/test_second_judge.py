from dataclasses import replace

import numpy as np
from PIL import Image

from huajia.evaluation.generators import OracleGenerator, RandomGenerator
from huajia.evaluation.model_report import diversity, report_model
from huajia.evaluation.prompts import shapes_eval_prompts
from huajia.evaluation.second_judge import judge, objects
from huajia.world.parser import read_prompt
from huajia.world.render import render
from huajia.world.sampler import scene_for


def test_second_judge_passes_oracle_pictures_and_fails_random_ones():
    prompts = shapes_eval_prompts(4)
    oracle = OracleGenerator().generate([p.text for p in prompts], list(range(len(prompts))), 128)
    noise = RandomGenerator().generate([p.text for p in prompts], list(range(len(prompts))), 128)
    assert np.mean([judge(im, p.spec) for im, p in zip(oracle, prompts, strict=True)]) >= 0.9
    assert np.mean([judge(im, p.spec) for im, p in zip(noise, prompts, strict=True)]) <= 0.15


def test_second_judge_reads_each_attribute_and_relation():
    spec = read_prompt("a red striped circle left of a blue square").spec
    picture = render(scene_for(spec, 3), 128)
    found = sorted(objects(picture), key=lambda o: o["box"][0])
    assert [(o["shape"], o["colour"], o["texture"]) for o in found] == [
        ("circle", "red", "striped"), ("square", "blue", "solid")]
    assert judge(picture, spec)
    flipped = replace(spec, relations=(replace(spec.relations[0], relation="right_of"),))
    assert not judge(picture, flipped)
    assert not judge(picture, read_prompt("a green striped circle left of a blue square").spec)
    assert not judge(picture, read_prompt("two red striped circles").spec)
    assert not judge(Image.new("RGB", (128, 128), "white"), read_prompt("a red circle").spec)


def test_model_report_judges_twice_and_measures_diversity():
    prompts = [p for p in shapes_eval_prompts(1) if p.lang == "en"]
    report = report_model(OracleGenerator(), prompts, images_per_prompt=2, keep=[prompts[0].id])
    assert report.shapes.overall > 0.9 and report.second_overall > 0.8
    assert report.diversity > 0.02 and set(report.samples) == {prompts[0].id}
    same = Image.new("RGB", (128, 128), "white")
    assert diversity([same, same.copy()]) == 0.0
    assert report.to_dict()["n_images"] == 2 * len(prompts)
