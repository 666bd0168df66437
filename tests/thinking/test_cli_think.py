import json
import subprocess
import sys

from PIL import Image

from huajia.engine.infotext import parse_infotext, read_infotext


def huajia(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "huajia", *args], capture_output=True,
                          text=True, timeout=300)


def test_think_writes_image_thoughts_and_timeline(sd_dir, tmp_path):
    done = huajia("think", "两个红色圆形在一个蓝色正方形的左边", "--model", str(sd_dir),
                  "--steps", "5", "--size", "64x64", "--pauses", "2", "--repaints", "1",
                  "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "thought" in done.stdout
    data = json.loads((tmp_path / "thoughts.json").read_text(encoding="utf-8"))
    assert data["lang"] == "zh" and data["thoughts"][0]["phase"] == "plan"
    assert Image.open(tmp_path / "timeline.png").size[0] > 400
    fields = parse_infotext(read_infotext(tmp_path / "final.png"))
    assert fields["Critic"] == "shapes" and int(fields["NFE"]) > 0


def test_compare_and_critic_errors(sd_dir, tmp_path):
    out = tmp_path / "cmp.png"
    done = huajia("compare", "a red circle", "--model", str(sd_dir), "--steps", "3",
                  "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size[0] > 500
    bad = huajia("think", "a red circle", "--critic", "vlm", "--model", str(sd_dir))
    assert bad.returncode == 2 and "--vlm-url" in bad.stderr.strip().splitlines()[-1]


def test_think_repaints_a_png_from_its_infotext(sd_dir, tmp_path):
    """The infotext records what reproduces a thinking run (seed, sampler, critic, every think
    option), and `huajia think --infotext PNG` paints the same pixels from it."""
    import numpy as np

    first = huajia("think", "a red circle above a blue square", "--model", str(sd_dir),
                   "--steps", "4", "--size", "64x64", "--seed", "11", "--restarts", "2",
                   "--repaints", "1", "--compose-tries", "1", "--scheduler", "euler",
                   "--threshold", "80", "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    fields = parse_infotext(read_infotext(tmp_path / "a" / "final.png"))
    options = json.loads(fields["Think options"])
    assert options["restarts"] == 2 and options["threshold"] == 80.0 and fields["Seed"] == "11"
    again = huajia("think", "--infotext", str(tmp_path / "a" / "final.png"), "--model",
                   str(sd_dir), "--out", str(tmp_path / "b"))
    assert again.returncode == 0, again.stderr
    a, b = (np.asarray(Image.open(tmp_path / d / "final.png")) for d in "ab")
    assert a.shape == b.shape and (a == b).all()
    assert read_infotext(tmp_path / "b" / "final.png") == read_infotext(tmp_path / "a" / "final.png")
