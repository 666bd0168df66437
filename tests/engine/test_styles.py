import json

import pytest

from huajia.engine.styles import get_style, load_styles
from huajia.errors import HuajiaError


def test_builtin_presets_are_data_with_a_prompt_slot():
    styles = load_styles()
    assert {"realistic", "cartoon", "cyberpunk", "anime"} <= set(styles)
    for style in styles.values():
        styled, _ = style.apply("a red circle", "")
        assert "a red circle" in styled


def test_apply_merges_negatives_and_user_files(tmp_path):
    prompt, negative = get_style("cartoon").apply("两个红色圆形", "blurry")
    assert "两个红色圆形" in prompt and negative.startswith("blurry, ")
    extra = tmp_path / "mine.json"
    extra.write_text(json.dumps([{"name": "noir", "prompt": "film noir {prompt}"}]))
    assert load_styles(extra)["noir"].apply("x", "")[0] == "film noir x"
    extra.write_text(json.dumps([{"name": "bad", "prompt": "no slot"}]))
    with pytest.raises(HuajiaError, match="no '{prompt}'"):
        load_styles(extra)


def test_unknown_style_names_the_known_ones():
    with pytest.raises(HuajiaError, match="unknown style 'cyberpnk'; known: anime, cartoon"):
        get_style("cyberpnk")


def test_a_users_styles_file_works_everywhere_through_the_environment(tmp_path, monkeypatch):
    import subprocess
    import sys

    from huajia.engine.request import GenerationRequest

    mine = tmp_path / "styles.json"
    mine.write_text(json.dumps([{"name": "poster", "prompt": "{prompt}, bold poster",
                                 "negative_prompt": "blurry"}]))
    with pytest.raises(HuajiaError, match="unknown style 'poster'"):
        GenerationRequest("a red circle", style="poster")
    monkeypatch.setenv("HUAJIA_STYLES", str(mine))
    assert GenerationRequest("a red circle", style="poster").style == "poster"
    assert load_styles()["poster"].apply("a red circle", "") == ("a red circle, bold poster", "blurry")
    listed = subprocess.run([sys.executable, "-m", "huajia", "styles", "--styles-file", str(mine)],
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "poster" in listed.stdout
    (tmp_path / "bad.json").write_text('{"name": "x"}')
    with pytest.raises(HuajiaError, match="must be a JSON list"):
        load_styles(tmp_path / "bad.json")
