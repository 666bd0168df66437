import json

import numpy as np
import pytest
from PIL import Image

from huajia.errors import HuajiaError
from huajia.world import captions
from huajia.world.dataset import read_metadata, write_dataset
from huajia.world.parser import parse
from huajia.world.spec import SceneSpec


def test_imagefolder_layout_and_captions(tmp_path):
    write_dataset(tmp_path, 40, seed=3, workers=1)
    rows = list(read_metadata(tmp_path))
    assert len(rows) == 40
    train_frames = {t.id for t in captions.templates(split="train")}
    assert train_frames  # captions come only from train templates: checked through the parser
    for row in rows:
        assert set(row) >= {"file_name", "text", "text_zh", "spec", "scene"}
        assert Image.open(tmp_path / row["file_name"]).size == (128, 128)
        spec = SceneSpec.from_dict(row["spec"])
        assert parse(row["text"]).spec == spec
        assert parse(row["text_zh"]).spec == spec


def test_same_seed_same_dataset_whatever_the_workers(tmp_path):
    write_dataset(tmp_path / "a", 300, seed=9, workers=1)
    write_dataset(tmp_path / "b", 300, seed=9, workers=2)
    a = (tmp_path / "a" / "metadata.jsonl").read_text(encoding="utf-8")
    assert a == (tmp_path / "b" / "metadata.jsonl").read_text(encoding="utf-8")
    assert (tmp_path / "a/images/0000299.png").read_bytes() == \
        (tmp_path / "b/images/0000299.png").read_bytes()
    assert json.loads(a.splitlines()[0])["text"]


def test_train_captions_avoid_eval_templates(tmp_path):
    write_dataset(tmp_path, 60, seed=1, workers=1)
    eval_prefixes = ("there is", "there are", "图中", "一张图片")
    for row in read_metadata(tmp_path):
        assert not row["text"].startswith(eval_prefixes[:2])
        assert not any(p in row["text_zh"] for p in eval_prefixes[2:])


@pytest.mark.parametrize("kwargs,message", [
    ({"n": 0}, "at least 1"), ({"n": 2, "split": "test"}, "unknown split"),
    ({"n": 2, "side": 7}, "out of range")])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(HuajiaError, match=message):
        write_dataset(tmp_path, **kwargs)


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(HuajiaError, match="cannot write"):
        write_dataset(blocker / "sub", 2)


def test_concept_datasets_teach_a_held_out_concept(tmp_path):
    write_dataset(tmp_path, 20, seed=2, workers=1, concept="hexagon")
    for row in read_metadata(tmp_path):
        assert "hexagon" in row["text"] or "hexagons" in row["text"]
        assert "六边形" in row["text_zh"]
        groups = row["scene"]["spec"]["groups"]  # the concept is the only new thing
        assert [g["shape"] for g in groups].count("hexagon") == 1
        assert all(g["texture"] != "checkered" for g in groups)
    with pytest.raises(HuajiaError, match="not a held-out concept"):
        write_dataset(tmp_path / "x", 2, concept="circle")


def test_captions_leave_colours_out_at_the_asked_rate():
    import numpy as np

    from huajia.world import sampler
    from huajia.world.dataset import described_spec

    rng = np.random.default_rng(0)
    scenes = [sampler.sample_scene(rng, "train", seed=i) for i in range(600)]
    kept = [described_spec(s, np.random.default_rng(i)) for i, s in enumerate(scenes)]
    assert all(g.colour for spec in kept for g in spec.groups)  # the default drops nothing
    specs = [described_spec(s, np.random.default_rng(i), 0.3) for i, s in enumerate(scenes)]
    none = sum(all(g.colour is None for g in spec.groups) for spec in specs) / len(specs)
    some = sum(len({g.colour is None for g in spec.groups}) == 2 for spec in specs)
    assert 0.24 < none < 0.38 and some > 10  # 'a star', and 'a red circle and a square'
    colourless = next(spec for spec in specs if all(g.colour is None for g in spec.groups))
    for lang in ("en", "zh"):
        text = captions.caption(colourless, captions.templates(lang, "train")[0])
        assert parse(text).spec == colourless, text


def test_datasets_can_leave_colours_out_like_the_base_recipe(tmp_path):
    write_dataset(tmp_path / "plain", 60, seed=4, workers=1, concept="hexagon")
    write_dataset(tmp_path / "drop", 60, seed=4, workers=1, concept="hexagon", colour_drop=0.5)
    plain, drop = list(read_metadata(tmp_path / "plain")), list(read_metadata(tmp_path / "drop"))
    assert all(g["colour"] for row in plain for g in row["spec"]["groups"])
    colourless = [row for row in drop if all(g["colour"] is None for g in row["spec"]["groups"])]
    assert 10 < len(colourless) < 50
    for row in colourless:  # the concept is still named, in both languages
        assert "hexagon" in row["text"] and "六边形" in row["text_zh"]
        groups = parse(row["text"]).spec.to_dict()["groups"]  # caption order may differ
        assert sorted(map(str, groups)) == sorted(map(str, row["spec"]["groups"]))
    assert [r["scene"] for r in plain] == [r["scene"] for r in drop]  # same pictures
    with pytest.raises(HuajiaError, match="not a chance"):
        write_dataset(tmp_path / "x", 2, colour_drop=1.5)


def test_alpha_masks_mark_the_concept_or_every_object(tmp_path):
    write_dataset(tmp_path / "plain", 6, seed=3, workers=1, concept="hexagon")
    write_dataset(tmp_path / "masked", 6, seed=3, workers=1, concept="hexagon", alpha_mask=True)
    write_dataset(tmp_path / "all", 4, seed=3, workers=1, alpha_mask=True)
    for folder, marked in (("masked", lambda obj: obj["shape"] == "hexagon"),
                           ("all", lambda obj: True)):
        for row in read_metadata(tmp_path / folder):
            image = Image.open(tmp_path / folder / row["file_name"])
            assert image.mode == "RGBA"
            alpha = np.asarray(image.getchannel("A"))
            assert alpha.min() == 0  # the background is never marked
            for obj in row["scene"]["objects"]:
                centre = alpha[int(obj["cy"] * 128), int(obj["cx"] * 128)]
                assert centre == (255 if marked(obj) else 0)
            if folder == "masked":  # the colours are untouched
                plain = Image.open(tmp_path / "plain" / row["file_name"])
                assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(plain))
