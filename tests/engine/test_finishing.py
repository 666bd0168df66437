"""Hires fix, upscalers, sharpening and edits on a tiny random-weight SD pipeline."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from huajia.engine.engine import Engine
from huajia.engine.infotext import parse_infotext, read_infotext, save_png
from huajia.engine.request import GenerationRequest, request_fields
from huajia.engine.upscalers import ModelUpscaler, Upscalers, sharpen, target_size
from huajia.errors import HuajiaError


def _request(prompt="a red circle", **extra):
    return GenerationRequest(prompt, seed=3, steps=2, width=64, height=64, **extra)


@pytest.fixture(scope="module")
def engine(sd_dir):
    return Engine(str(sd_dir))


@pytest.fixture(scope="module")
def esrgan_file(tmp_path_factory):
    """A randomly initialised tiny ESRGAN (RRDBNet, 2x) state dict, as a .pth file."""
    from huajia.engine.upscalers import _spandrel

    esrgan = _spandrel().architectures.ESRGAN.ESRGAN
    torch.manual_seed(0)
    model = esrgan(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2)
    path = tmp_path_factory.mktemp("upscaler") / "tiny-esrgan-2x.pth"
    torch.save(model.state_dict(), path)
    return path


def test_sharpen_amount_one_is_the_3x3_kernel_and_zero_is_identity():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
    kernel = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float32)
    expected = cv2.filter2D(np.asarray(image, dtype=np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT)
    expected = np.clip(np.rint(expected), 0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(sharpen(image, 1.0)), expected)
    assert sharpen(image, 0) is image
    with pytest.raises(HuajiaError, match="sharpen"):
        sharpen(image, 9)


def test_target_size_rounds_to_multiples_of_8_and_bounds_the_result():
    assert target_size((128, 96), 2) == (256, 192)
    assert target_size((100, 100), 1.5) == (152, 152)
    with pytest.raises(HuajiaError, match="2048 px limit"):
        target_size((1024, 1024), 4)


def test_spandrel_loads_an_esrgan_file_and_upscales_through_it(esrgan_file):
    upscaler = ModelUpscaler(esrgan_file)
    assert upscaler.scale == 2
    image = Image.new("RGB", (24, 16), (200, 30, 30))
    assert upscaler(image).size == (48, 32)
    assert Upscalers().upscale(image, (96, 64), str(esrgan_file)).size == (96, 64)
    assert "torchvision" not in sys.modules or sys.modules["torchvision"].__spec__ is not None


def test_a_file_that_is_not_a_model_is_one_clear_error(tmp_path):
    junk = tmp_path / "notes.pth"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(HuajiaError, match="is not an upscaler model spandrel can load"):
        ModelUpscaler(junk)
    with pytest.raises(HuajiaError, match="does not exist"):
        ModelUpscaler(tmp_path / "missing.pth")


@pytest.mark.parametrize("upscaler", ["latent", "lanczos"])
def test_hires_fix_paints_at_the_scaled_size_with_a1111_keys(engine, upscaler):
    request = _request(hires_scale=2, hires_upscaler=upscaler, hires_steps=4, hires_denoise=0.5)
    result = engine.generate(request)
    assert result.images[0].size == (128, 128)
    info = parse_infotext(result.infotexts[0])
    assert info["Size"] == "64x64" and info["Hires upscale"] == "2"
    assert info["Hires upscaler"] == upscaler.capitalize() and info["Hires steps"] == "4"
    assert info["Denoising strength"] == "0.5"
    back = request_fields(result.infotexts[0])
    assert back["hires_scale"] == 2 and back["hires_upscaler"] == upscaler
    assert (back["width"], back["hires_denoise"], back["hires_steps"]) == (64, 0.5, 4)
    again = engine.generate(GenerationRequest(**{**back, "steps": 2}))
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(result.images[0]))


def test_hires_fix_with_an_upscaler_file_and_plain_pixels_unchanged(engine, esrgan_file):
    plain = engine.generate(_request())
    assert plain.images[0].size == (64, 64) and "Hires" not in plain.infotexts[0]
    result = engine.generate(_request(hires_scale=1.5, hires_upscaler=str(esrgan_file)))
    assert result.images[0].size == (96, 96)
    assert parse_infotext(result.infotexts[0])["Hires upscaler"] == "tiny-esrgan-2x"


def test_sharpen_is_applied_after_decoding_and_recorded(engine):
    plain, sharp = engine.generate(_request()), engine.generate(_request(sharpen=1.0))
    assert np.array_equal(np.asarray(sharpen(plain.images[0], 1.0)), np.asarray(sharp.images[0]))
    assert parse_infotext(sharp.infotexts[0])["Sharpen"] == "1.0"


def test_style_raw_wraps_the_prompt(engine):
    result = engine.generate(_request(style_raw="{prompt}, flat colours"))
    assert result.metadata[0]["Prompt"] == "a red circle, flat colours"
    with pytest.raises(HuajiaError, match="needs '\\{prompt\\}'"):
        _request(style_raw="flat colours")


def _square_mask(size=64):
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (size // 2, 0, size, size))
    return mask


def test_edit_repaints_only_the_masked_area(engine):
    picture = engine.generate(_request()).images[0]
    mask = _square_mask()
    result = engine.edit(_request("a blue square", n=2), picture, mask)
    inside = np.asarray(mask) > 0
    for edited in result.images:
        diff = np.abs(np.asarray(edited, np.int16) - np.asarray(picture, np.int16))
        assert diff[~inside].max() == 0 and diff[inside].mean() > 1
    assert parse_infotext(result.infotexts[0])["Denoising strength"] == "1.0"
    # OpenAI's form: transparent where to paint
    rgba = picture.convert("RGBA")
    rgba.putalpha(Image.fromarray(255 - np.asarray(mask)))
    same = engine.edit(_request("a blue square", n=1), rgba, None)
    assert np.array_equal(np.asarray(same.images[0]), np.asarray(result.images[0]))


@pytest.mark.parametrize("mask, message", [
    (Image.new("L", (32, 32), 255), "the mask is 32x32 but the picture is 64x64"),
    (Image.new("L", (64, 64), 0), "the mask is empty"),
    (None, "no mask"),
])
def test_edit_refuses_bad_masks(engine, mask, message):
    with pytest.raises(HuajiaError, match=message):
        engine.edit(_request(), Image.new("RGB", (64, 64), "white"), mask)


def test_variations_keep_the_size_and_differ_by_seed(engine):
    picture = engine.generate(_request()).images[0]
    result = engine.vary(_request(n=2), picture)
    assert [i.size for i in result.images] == [(64, 64)] * 2
    assert not np.array_equal(np.asarray(result.images[0]), np.asarray(result.images[1]))


def _huajia(*args, cwd):
    return subprocess.run([sys.executable, "-m", "huajia", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_cli_edit_and_upscale(sd_dir, tmp_path, esrgan_file):
    picture = Engine(str(sd_dir)).generate(_request())
    save_png(picture.images[0], tmp_path / "in.png", picture.infotexts[0])
    _square_mask().save(tmp_path / "mask.png")
    done = _huajia("edit", tmp_path / "in.png", "a blue square", "--mask", tmp_path / "mask.png",
                   "--model", sd_dir, "--steps", "2", "--out", tmp_path / "edits", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [edited] = (tmp_path / "edits").glob("*.png")
    assert Image.open(edited).size == (64, 64)
    done = _huajia("upscale", tmp_path / "in.png", "--scale", "4", "--model", esrgan_file,
                   "--out", tmp_path / "big.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "big.png").size == (256, 256)
    assert "Postprocess upscaler: tiny-esrgan-2x" in read_infotext(tmp_path / "big.png")


@pytest.mark.parametrize("args, message", [
    (["edit", "{tmp}/in.png", "a circle", "--mask", "{tmp}/small.png"], "the mask is 32x32"),
    (["edit", "{tmp}/notes.txt", "a circle"], "cannot read image"),
    (["upscale", "{tmp}/in.png", "--model", "{tmp}/notes.txt"], "is not an upscaler model"),
    (["upscale", "{tmp}/in.png", "--scale", "9"], "--scale 9 is out of range"),
    (["generate", "a red circle", "--hires-scale", "9"], "hires_scale=9.0 is out of range"),
    (["generate", "a __nope__ circle", "--expand", "wildcards"], "wildcard '__nope__' has no file"),
    (["generate", "a red circle", "--expand", "wildcards", "--wildcards", "{tmp}/none"],
     "wildcard folder"),
    (["generate", "a red circle", "--expand", "llm", "--llm-url", "http://127.0.0.1:9/v1",
      "--llm-model", "m", "--steps", "1"], "cannot reach the LLM"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    Image.new("RGB", (64, 64), "white").save(tmp_path / "in.png")
    Image.new("L", (32, 32), 255).save(tmp_path / "small.png")
    (tmp_path / "notes.txt").write_text("hello")
    before = set(tmp_path.rglob("*"))
    done = _huajia(*[a.format(tmp=tmp_path) for a in args], "--out", tmp_path / "out", cwd=tmp_path) \
        if args[0] != "upscale" else _huajia(*[a.format(tmp=tmp_path) for a in args], cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and message in lines[0], done.stderr
    assert not [p for p in set(tmp_path.rglob("*")) - before if p.is_file()]
