"""`huajia generate` and `huajia info` as a user runs them, on a tiny pipeline folder."""

import subprocess
import sys

from huajia.engine.infotext import parse_infotext, read_infotext


def huajia(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "huajia", *args], capture_output=True,
                          text=True, timeout=300)


def test_generate_writes_pngs_with_infotext(sd_dir, tmp_path):
    done = huajia("generate", "两个(红色:1.3)圆形", "-n", "2", "--seed", "5", "--steps", "2",
                  "--size", "64x64", "--model", str(sd_dir), "--out", str(tmp_path),
                  "--negative", "blurry", "--style", "cartoon")
    assert done.returncode == 0, done.stderr
    files = sorted(tmp_path.glob("*.png"))
    assert [f.name for f in files] == ["00000-5.png", "00001-6.png"]
    fields = parse_infotext(read_infotext(files[1]))
    assert "两个(红色:1.3)圆形" in fields["Prompt"] and fields["Seed"] == "6"
    assert fields["Negative prompt"].startswith("blurry") and fields["Style"] == "cartoon"
    shown = huajia("info", str(files[1]))
    assert shown.returncode == 0 and "Seed: 6" in shown.stdout


def test_generate_errors_are_one_line(sd_dir, tmp_path):
    cases = [
        (("generate", "x", "--style", "cyberpnk", "--model", str(sd_dir)), "unknown style"),
        (("generate", "x", "--size", "7x7", "--model", str(sd_dir)), "width=7"),
        (("generate", "x", "--size", "big", "--model", str(sd_dir)), "not WIDTHxHEIGHT"),
        (("generate", "(x", "--steps", "1", "--size", "64x64", "--model", str(sd_dir),
          "--out", str(tmp_path)), "malformed prompt"),
        (("generate", "x", "--model", str(tmp_path / "nope")), "no model at"),
        (("generate", "x", "--steps", "1", "--size", "64x64", "--model", str(sd_dir),
          "--out", str(tmp_path), "--lora", str(tmp_path / "none.safetensors")), "LoRA"),
    ]
    for args, needle in cases:
        done = huajia(*args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and needle in lines[0], (args, done.stderr)


def test_info_on_a_png_without_parameters(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    done = huajia("info", str(tmp_path / "plain.png"))
    assert done.returncode == 2 and "no generation parameters" in done.stderr
