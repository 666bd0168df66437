import numpy as np
import pytest
from PIL import Image, ImageDraw

from huajia.drawing import Tile, _fit, captioned_grid, font, load_image, wrap
from huajia.errors import HuajiaError


def _ink(text: str) -> np.ndarray:
    canvas = Image.new("L", (120, 40), 0)
    ImageDraw.Draw(canvas).text((4, 4), text, fill=255, font=font(24))
    return np.asarray(canvas) > 0


def test_chinese_renders_as_real_glyphs():
    hua, jia, missing = _ink("画"), _ink("家"), _ink("\uffff")
    assert hua.sum() > 40 and jia.sum() > 40
    assert not np.array_equal(hua, jia)  # distinct glyphs, not one 'tofu' box
    assert not np.array_equal(hua, missing)


def test_wrap_breaks_chinese_and_english():
    face = font(13)
    lines = wrap("应有2个红色圆形，只找到1个；另有1个蓝色圆形", 100, face)
    assert len(lines) > 1 and all(face.getlength(line) <= 100 for line in lines)
    assert wrap("two red circles left of a blue square", 90, face)[0] == "two red circles"


def test_grid_and_bad_images(tmp_path):
    grid = captioned_grid([Tile(Image.new("RGB", (64, 64)), ("画家 huajia",))] * 3, columns=2)
    assert grid.size[0] == 2 * (192 + 16)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 20)
    with pytest.raises(HuajiaError, match="cannot read image"):
        load_image(broken)
    with pytest.raises(HuajiaError, match="does not exist"):
        load_image(tmp_path / "nope.png")


def test_grid_text_fits_or_is_marked_cut():
    long = "expected 2 red squares, found 1; also saw 1 orange square " * 6
    tiles = [Tile(Image.new("RGB", (64, 64)), ("short",)), Tile(Image.new("RGB", (64, 64)), (long,))]
    lines = len(wrap(long, 96, font(13)))
    fitted = captioned_grid(tiles, columns=2, tile_px=96, text_lines=None)
    capped = captioned_grid(tiles, columns=2, tile_px=96, text_lines=3)
    assert fitted.size[1] == 96 + 16 + lines * 17 and capped.size[1] == 96 + 16 + 3 * 17
    assert _fit(["a", "b", "c"], 2) == ["a", "b …"] and _fit(["a"], 2) == ["a"]


def test_without_a_cjk_font_latin_text_still_draws_and_chinese_fails_first(monkeypatch):
    """A machine with no Chinese font: English pictures use Pillow's own font; Chinese text
    is refused up front (before any work) with the way out, not after the compute."""
    from typer.testing import CliRunner

    from huajia import drawing
    from huajia.cli import app

    monkeypatch.setattr(drawing, "_cjk_font_or_none", lambda: None)
    drawing.font.cache_clear()
    try:
        tile = drawing.Tile(Image.new("RGB", (32, 32), "red"), ("a red circle",))
        assert drawing.captioned_grid([tile], title="English only").size[0] > 100
        with pytest.raises(HuajiaError, match="Chinese glyphs"):
            drawing.captioned_grid([drawing.Tile(tile.image, ("一个红色圆形",))])
        result = CliRunner().invoke(app, ["think", "一个红色圆形", "--model", "/nonexistent"])
        assert isinstance(result.exception, HuajiaError)
        assert "Chinese glyphs" in str(result.exception)  # not 'no model at': checked first
    finally:
        drawing.font.cache_clear()
