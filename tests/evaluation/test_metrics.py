"""The metrics' sanity with the shipped world feature network: FID small between oracle sets,
rising with every perturbation's strength, far larger for noise; IS of varied renders above a
one-class set; KID with its standard error; same inputs, same numbers. Also the Inception and
CLIP feature paths (random weights, as diffusers' tests do) and the CLI's bad input."""

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from huajia.errors import HuajiaError
from huajia.evaluation.metrics.compute import measure
from huajia.evaluation.metrics.features import extract, make_extractor
from huajia.evaluation.metrics.images import batch_tensor, world_renders

ALL = ["fid", "kid", "is", "precision-recall", "diversity"]


@pytest.fixture(scope="module")
def world():
    return make_extractor("world")


@pytest.fixture(scope="module")
def oracle():
    return world_renders(200, seed=1), world_renders(200, seed=2)


def _pictures(tensor):
    return [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in tensor]


def _jpeg(picture, quality):
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=quality)
    return Image.open(buffer).convert("RGB")


def _noisy(picture, sigma, rng):
    array = np.asarray(picture, np.float32) + rng.normal(0, sigma * 255, (*picture.size[::-1], 3))
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def _fid(extractor, real, pictures):
    fake = batch_tensor(pictures, 128)
    return measure(["fid"], extract(extractor, real)[0], extract(extractor, fake)[0], None)["fid"]


def test_fid_is_small_between_oracle_sets_and_rises_with_every_perturbation(world, oracle):
    real, other = oracle
    base = _fid(world, real, _pictures(other))
    pictures = _pictures(other)
    rng = np.random.default_rng(0)
    perturbations = {
        "blur": [[p.filter(ImageFilter.GaussianBlur(s)) for p in pictures] for s in (0.7, 1.5, 3.0)],
        "jpeg": [[_jpeg(p, q) for p in pictures] for q in (40, 15, 5)],
        "noise": [[_noisy(p, s, rng) for p in pictures] for s in (0.04, 0.1, 0.25)],
    }
    for name, levels in perturbations.items():
        scores = [_fid(world, real, level) for level in levels]
        assert base < scores[0] < scores[1] < scores[2], (name, base, scores)
    noise = [Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)) for _ in range(200)]
    assert _fid(world, real, noise) > 20 * max(base, 1e-3)


def test_is_kid_precision_recall_and_determinism(world, oracle):
    from huajia.world.render import render
    from huajia.world.sampler import scene_for
    from huajia.world.spec import ObjectGroup, SceneSpec

    real, other = oracle
    real_f, _ = extract(world, real)
    other_f, other_logits = extract(world, other)
    varied = measure(ALL, real_f, other_f, other_logits)
    spec = SceneSpec((ObjectGroup("circle", 1, "red", "solid", "large"),))
    one_class = batch_tensor([render(scene_for(spec, s)) for s in range(100)], 128)
    one_f, one_logits = extract(world, one_class)
    narrow = measure(ALL, real_f, one_f, one_logits)
    assert varied["is"] > 3 * narrow["is"] and narrow["is"] < 2.0
    assert varied["kid_std"] > 0 and abs(varied["kid"]) < 3 * varied["kid_std"] + 1e-3
    assert narrow["kid"] > varied["kid"] + 5 * varied["kid_std"]
    assert varied["precision"] > 0.8 and varied["recall"] > 0.8
    assert narrow["recall"] < 0.2  # one kind of picture covers little of the world
    assert varied["diversity"] > narrow["diversity"]
    assert measure(ALL, real_f, other_f, other_logits) == varied  # same inputs, same numbers


def _random_inception(path):
    from huajia.evaluation.metrics.inception import FidInceptionV3

    torch.manual_seed(0)
    torch.save(FidInceptionV3().state_dict(), path)


def test_inception_and_clip_feature_paths(tmp_path, clip_dir, oracle):
    _random_inception(tmp_path / "inception.pth")
    inception = make_extractor(f"inception:{tmp_path / 'inception.pth'}")
    images = oracle[0][:12]
    features, logits = extract(inception, images)
    assert features.shape == (12, 2048) and logits.shape == (12, 1008)
    clip = make_extractor(f"clip:{clip_dir}")
    features, logits = extract(clip, images)
    assert features.shape[0] == 12 and logits is None
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(HuajiaError, match="not the FID Inception"):
        make_extractor(f"inception:{tmp_path / 'other.pth'}")


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "huajia", "eval", *args], capture_output=True,
                          text=True, timeout=600, env=env)


@pytest.mark.parametrize("case, message", [
    ("missing", "is not a folder"),
    ("empty", "no readable pictures"),
    ("few", "at least 10"),
    ("features", "not a world feature network"),
    ("metric", "unknown metric"),
])
def test_eval_images_bad_input_is_one_line(tmp_path, case, message):
    folder = tmp_path / "fake"
    folder.mkdir()
    if case == "few":
        for i in range(3):
            Image.new("RGB", (32, 32)).save(folder / f"{i}.png")
    args = ["images", "--fake", str(tmp_path / "nowhere" if case == "missing" else folder)]
    if case == "features":
        (folder / "a.png").write_bytes(b"x")
        args += ["--features", f"world:{tmp_path}"]
    if case == "metric":
        args += ["--metrics", "fid,sharpness"]
    done = _cli(*args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and message in lines[0], done.stderr


def test_eval_images_counts_unreadable_files_and_writes_json(tmp_path, oracle):
    import json
    import os

    real, fake = tmp_path / "real", tmp_path / "fake"
    for folder, tensor in ((real, oracle[0][:20]), (fake, oracle[1][:20])):
        folder.mkdir()
        for i, picture in enumerate(_pictures(tensor)):
            picture.save(folder / f"{i}.png")
    (fake / "broken.png").write_bytes(b"not a png")
    done = _cli("images", "--real", str(real), "--fake", str(fake), "--out", str(tmp_path / "out"),
                env={**os.environ, "HUAJIA_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert Image.open(tmp_path / "out" / "grid.png").size[0] > 500
    assert report["n_fake"] == 20 and report["skipped_unreadable"] == 1
    assert {"fid", "kid", "kid_std", "is", "precision", "recall", "diversity"} <= report.keys()


def test_clip_score_reads_each_pictures_prompt(tmp_path, clip_dir, oracle):
    import json
    import os

    from PIL import PngImagePlugin

    fake = tmp_path / "fake"
    fake.mkdir()
    for i, picture in enumerate(_pictures(oracle[1][:12])):
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", f"a red circle\nSteps: 20, Seed: {i}")
        picture.save(fake / f"{i}.png", pnginfo=info)
    done = _cli("images", "--real", "world", "--reference-images", "20", "--fake", str(fake),
                "--metrics", "clip-score,diversity", "--clip-model", str(clip_dir),
                "--json", str(tmp_path / "c.json"), env={**os.environ, "HUAJIA_CACHE": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["clip_score_images"] == 12 and 0 <= report["clip_score"] <= 100


def test_eval_model_writes_one_report(tmp_path, sd_dir):
    import json
    import os

    (tmp_path / "p.txt").write_text("a red circle\n两个蓝色正方形\n", encoding="utf-8")
    done = _cli("model", "--model", str(sd_dir), "--out", str(tmp_path / "out"), "--prompts",
                str(tmp_path / "p.txt"), "-n", "6", "--steps", "2", "--cfg", "3,7",
                env={**os.environ, "HUAJIA_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [s["setting"] for s in report["settings"]] == ["plain, CFG 3", "plain, CFG 7"]
    assert all("fid" in s and "shapes_eval" in s for s in report["settings"])
    assert Image.open(tmp_path / "out" / "report.png").size[0] > 600
