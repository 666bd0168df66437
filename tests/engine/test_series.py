import subprocess
import sys

import pytest
from PIL import Image

from huajia.engine.series import read_prompts
from huajia.errors import HuajiaError


def test_series_writes_panels_and_sheet(sd_dir, tmp_path):
    prompts = tmp_path / "story.txt"
    prompts.write_text("# a story\na red circle\n\n两个蓝色正方形\na green star\n", "utf-8")
    grid = tmp_path / "story.png"
    done = subprocess.run([sys.executable, "-m", "huajia", "series", str(prompts), "--seed", "7",
                           "--steps", "2", "--negative", "blurry", "--model", str(sd_dir),
                           "--grid", str(grid)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    panels = sorted((tmp_path / "story").glob("*.png"))
    assert [p.name for p in panels] == ["01-7.png", "02-8.png", "03-9.png"]
    assert Image.open(grid).size[0] > 600


def test_prompt_file_errors(tmp_path):
    empty = tmp_path / "e.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(HuajiaError, match="no prompts"):
        read_prompts(empty)
    with pytest.raises(HuajiaError, match="cannot read"):
        read_prompts(tmp_path / "missing.txt")
