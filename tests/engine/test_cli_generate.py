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


def test_info_pastes_into_a1111_with_loras(sd_dir, tmp_path):
    """`huajia info` prints the infotext verbatim (a long one too: no wrapping), and A1111's
    parser reads every field back, LoRAs as <lora:name:scale> tags with their hashes."""
    from tests.conftest import loud_lora
    from tests.engine.a1111_infotext import parse_generation_parameters

    from huajia.engine.lora import lora_hash

    lora = loud_lora(sd_dir, tmp_path / "ink")
    prompt = "a red circle, " + "with a long, long description " * 6
    done = huajia("generate", prompt, "--seed", "4", "--steps", "2", "--size", "64x64",
                  "--model", str(sd_dir), "--out", str(tmp_path / "out"), "--negative",
                  "blurry, dark", "--lora", f"{lora}:0.8", "--scheduler", "euler_a",
                  "--guidance-rescale", "0.5")
    assert done.returncode == 0, done.stderr
    png = next((tmp_path / "out").glob("*.png"))
    shown = huajia("info", str(png))
    assert shown.stdout == read_infotext(png) + "\n"
    parsed = parse_generation_parameters(shown.stdout)
    assert parsed["Steps"] == "2" and parsed["Seed"] == "4" and parsed["CFG scale"] == "5.0"
    assert parsed["Size-1"] == parsed["Size-2"] == "64"
    assert parsed["Sampler"] == "Euler a" and parsed["CFG rescale"] == "0.5"
    assert parsed["Negative prompt"] == "blurry, dark"
    assert parsed["Prompt"].startswith(prompt.strip()) and parsed["loras"] == {"ink": 0.8}
    assert parsed["Lora hashes"] == f"ink: {lora_hash(lora)}"
    assert str(tmp_path) not in shown.stdout  # names, never the server's paths


def test_usage_errors_are_one_line_exit_2(tmp_path):
    """Every kind of typo: one line naming it and where help is, exit 2, no traceback."""
    cases = [
        (("generate", "x", "--cfg", "abc"), "--guidance"),
        (("generate", "x", "--steps", "abc"), "--steps"),
        (("generate", "x", "--bogus"), "No such option"),
        (("generate",), "Missing argument"),
        (("paint", "x"), "No such command"),
        (("think",), "PROMPT"),
        (("train", "rl", "--out", str(tmp_path / "r"), "--group-size", "abc"), "--group-size"),
        (("generate", "x", "--scheduler", "nope"), "scheduler"),
        (("think", "a red circle", "--budget", "0"), "budget"),
        (("think", "a red circle and a dog"), "'dog'"),
        (("serve", "--model-alias", "dall-e-3"), "NAME=MODEL"),
    ]
    for args, needle in cases:
        done = huajia(*args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and needle in lines[0], (args, done.stderr)
        assert "Traceback" not in done.stderr
