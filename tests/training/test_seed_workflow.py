"""The seed's workflow end to end on the tiny Kolors fixture, as docs/lora.md runs it: a
Data-Juicer config (the seed's two filters) through ``huajia curate``, ``huajia train lora
--recipe diffsynth-kolors`` on its export, then a seeded series with the LoRA at half strength
(the seed's alpha 2 of 4), Chinese prompts, a negative prompt and CFG 4, stitched into a grid."""

import json
import textwrap

import numpy as np
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from huajia.cli import app

STORY = """\
二次元,日系动漫,演唱会的观众席,人山人海,一个紫色短发小女孩穿着粉色吊带漏肩连衣裙坐在演唱会的观众席
二次元,一个紫色短发小女孩穿着粉色吊带漏肩连衣裙坐在演唱会的观众席,露出憧憬的神情
二次元,一个紫色短发小女孩穿着粉色吊带漏肩连衣裙,对着流星许愿,闭着眼睛,十指交叉,侧面
二次元,一个紫色中等长度头发小女孩穿着粉色吊带漏肩连衣裙,在练习室练习唱歌
二次元,一个紫色长发小女孩穿着粉色吊带漏肩连衣裙,在练习室练习唱歌,手持话筒
二次元,紫色长发少女,穿着黑色连衣裙,试衣间,心情忐忑
二次元,紫色长发少女,穿着黑色礼服,连衣裙,在台上唱歌
二次元,紫色长发少女,穿着黑色礼服,在台上谢幕
"""


def _seed_dataset(root):
    """The seed's input format: {"text": "二次元", "image": [path]}; two pictures too small or
    too wide for its filters."""
    (root / "train").mkdir(parents=True)
    sizes = [(96, 96), (80, 100), (100, 80), (40, 40), (300, 90), (90, 90)]
    with open(root / "metadata.jsonl", "w", encoding="utf-8") as handle:
        for k, size in enumerate(sizes):
            image = Image.new("RGB", size, (150, 90, 200))
            ImageDraw.Draw(image).ellipse((10 + k, 10, size[0] - 10, size[1] - 10 - k),
                                          fill=(250, 180, 210))
            path = root / "train" / f"{k}.jpg"
            image.save(path)
            handle.write(json.dumps({"text": "二次元", "image": [str(path)]},
                                    ensure_ascii=False) + "\n")


def test_curate_train_and_paint_the_story_on_kolors(family_dirs, tmp_path):
    runner = CliRunner()
    _seed_dataset(tmp_path / "input")
    config = tmp_path / "data_juicer_config.yaml"
    config.write_text(textwrap.dedent(f"""
        project_name: 'data-process'
        dataset_path: '{tmp_path}/input/metadata.jsonl'
        np: 1
        text_keys: 'text'
        image_key: 'image'
        image_special_token: '<__dj__image>'
        export_path: '{tmp_path}/output/result.jsonl'
        process:
          - image_shape_filter:
              min_width: 64
              min_height: 64
              any_or_all: any
          - image_aspect_ratio_filter:
              min_ratio: 0.5
              max_ratio: 2.0
              any_or_all: any
        """), encoding="utf-8")
    done = runner.invoke(app, ["curate", "--config", str(config)])
    assert done.exit_code == 0, done.output
    kept = (tmp_path / "output/result.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(kept) == 4

    kolors = str(family_dirs["kolors"])
    done = runner.invoke(app, ["train", "lora", "--recipe", "diffsynth-kolors", "--model", kolors,
                               "--data", str(tmp_path / "output/result.jsonl"),
                               "--out", str(tmp_path / "lora"), "--steps", "2",
                               "--resolution", "64", "--lr", "0.05"])
    assert done.exit_code == 0, done.output
    lora = tmp_path / "lora/pytorch_lora_weights.safetensors"
    record = json.loads((tmp_path / "lora/training.json").read_text())
    assert record["recipe"]["rank"] == 16 and record["recipe"]["alpha"] == 4.0
    assert record["recipe"]["center_crop"] and record["family"] == "kolors"

    (tmp_path / "story.txt").write_text(STORY, encoding="utf-8")

    def series(name, *lora_options):
        done = runner.invoke(app, [
            "series", str(tmp_path / "story.txt"), "--model", kolors, *lora_options,
            "--negative-prompt", "丑陋、变形、嘈杂、模糊、低对比度", "--guidance", "4",
            "--steps", "2", "--seed", "1", "--grid", str(tmp_path / f"{name}.png")])
        assert done.exit_code == 0, done.output
        panels = sorted((tmp_path / name).glob("*.png"))
        return panels, [np.asarray(Image.open(p), dtype=float) for p in panels]

    # the seed loads its LoRA back at alpha 2 of the trained 4: scale 0.5
    panels, with_lora = series("story", "--lora", f"{lora}:0.5")
    assert [p.name for p in panels] == [f"{i:02d}-{i}.png" for i in range(1, 9)]  # seeds 1…8
    assert "丑陋" in Image.open(panels[0]).text["parameters"]  # the negative, in the infotext
    assert Image.open(tmp_path / "story.png").size[0] >= 4 * 224  # the grid: 4 columns
    _, without = series("plain")
    assert all(np.abs(a - b).mean() > 0.5 for a, b in zip(with_lora, without, strict=True))
