"""``train lora --buckets``: sizes of about the training area in the family's multiples, each
picture cropped to the bucket of nearest aspect, a batch of one size; on SD 1.5, SDXL, FLUX.1
and Qwen-Image (whose conditioning follows the size) the LoRA loads back and changes the
picture."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw
from tests.training.test_lora_families import _recipe

from huajia.engine.engine import Engine
from huajia.engine.families import detect
from huajia.engine.request import GenerationRequest, LoraSpec
from huajia.errors import HuajiaError
from huajia.training.buckets import MAX_RATIO, bucket_multiple, bucket_sizes, cover_crop, nearest_bucket
from huajia.training.lora import LoraRecipe, LoraRun, train_lora

SHAPES = {"wide": (128, 64), "tall": (64, 128), "square": (96, 96)}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Two pictures of each aspect, with English and Chinese captions."""
    folder = tmp_path_factory.mktemp("mixed")
    for i, (name, size) in enumerate([*SHAPES.items()] * 2):
        image = Image.new("RGB", size, (20 + 40 * i, 90, 200 - 30 * i))
        ImageDraw.Draw(image).ellipse((8, 8, size[0] // 2, size[1] // 2), fill=(230, 40, 40))
        image.save(folder / f"{name}{i}.png")
        (folder / f"{name}{i}.txt").write_text(f"a red circle, {name} 一只红色的圆", encoding="utf-8")
    return str(folder)


@pytest.mark.parametrize("name, side", [("flux", 64), ("sdxl", 64), ("sd15", 32)])
def test_bucket_sizes_keep_the_area_the_multiple_and_the_ratio(name, side, family_dirs):
    engine = Engine(str(family_dirs[name]))
    family, pipe = detect(engine.pipe), engine.pipe
    sizes = bucket_sizes(family, pipe, side)
    multiple = bucket_multiple(family, pipe)
    assert multiple % family.size_multiple(pipe) == 0
    assert (side, side) in sizes and len(sizes) >= 3
    for w, h in sizes:
        assert w % multiple == 0 and h % multiple == 0 and w * h <= side * side
        assert max(w / h, h / w) <= MAX_RATIO and (h, w) in sizes  # tall and wide alike
    widest = max(sizes, key=lambda s: s[0] / s[1])
    assert nearest_bucket((4000, 1000), sizes) == widest
    assert nearest_bucket((1000, 4000), sizes) == widest[::-1]
    assert nearest_bucket((500, 500), sizes) == (side, side)


def test_cover_crop_fills_the_bucket_from_the_centre():
    image = Image.new("RGB", (200, 100), (0, 0, 0))
    ImageDraw.Draw(image).rectangle((75, 0, 124, 99), fill=(255, 255, 255))  # the centre band
    cropped = cover_crop(image, (40, 80))
    assert cropped.size == (40, 80)
    assert np.asarray(cropped, dtype=float).mean() > 200  # only the white centre is left


@pytest.mark.parametrize("name", ["sd15", "sdxl", "flux", "qwenimage"])
def test_bucketed_training_uses_every_aspect_and_its_lora_changes_the_picture(
        name, family_dirs, mixed, tmp_path, monkeypatch):
    """SDXL's added time ids, FLUX.1's position ids and Qwen-Image's image shapes follow the
    bucket's size."""
    side = 32 if name == "sd15" else 64
    asked, at = [], LoraRun.at

    def recording(run, size):
        asked.append(size)
        return at(run, size)

    monkeypatch.setattr(LoraRun, "at", recording)
    path = train_lora(_recipe(name, family_dirs, mixed, tmp_path / "out", buckets=True,
                              resolution=side, steps=3))
    assert any(w != h for w, h in asked)  # a batch of an oblong bucket was trained
    record = json.loads((tmp_path / "out" / "training.json").read_text())
    sizes = {tuple(int(v) for v in key.split("x")): n for key, n in record["buckets"].items()}
    assert sum(sizes.values()) == 6 and len(sizes) == 3  # wide, tall and square: 2 each
    assert all(n == 2 for n in sizes.values()) and (side, side) in sizes
    wide = max(sizes, key=lambda s: s[0] / s[1])
    assert wide[0] > wide[1] and (wide[1], wide[0]) in sizes
    engine = Engine(str(family_dirs[name]))

    def paint(*loras):
        request = GenerationRequest("一只红色的圆 a red circle", seed=3, steps=2, width=64, height=64,
                                    guidance=4.0, loras=loras)
        return np.asarray(engine.generate(request).images[0], dtype=float)

    assert np.abs(paint() - paint(LoraSpec(str(path), 1.0))).mean() > 0.5


def test_buckets_refuse_a_centre_crop_and_reg_data_in_one_line():
    for changes in ({"center_crop": True}, {"reg_data": "reg"}):
        with pytest.raises(HuajiaError, match="--buckets crops each picture to its own size"):
            LoraRecipe(data="x", out="y", buckets=True, **changes)
