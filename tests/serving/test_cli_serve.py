"""`huajia detect` and `huajia serve` as a user meets them."""

import numpy as np
import pytest
from tests.test_cli import huajia

from huajia.engine.infotext import save_png
from huajia.serving.provenance import embed_watermark
from huajia.world import sampler
from huajia.world.render import render


def test_detect_tells_our_pictures_apart(tmp_path):
    picture = render(sampler.sample_scene(np.random.default_rng(2), "train", seed=2), 128)
    ours, theirs = tmp_path / "ours.jpg", tmp_path / "theirs.png"
    save_png(picture, theirs, "a red circle\nSteps: 20, Version: huajia 0.1.0")
    embed_watermark(picture, "the server's secret").save(ours, quality=80)  # no infotext left
    key_file = tmp_path / "watermark-key"
    key_file.write_text("the server's secret\n")
    done = huajia("detect", str(ours), "--watermark-key-file", str(key_file))
    assert done.returncode == 0 and "made by huajia" in done.stdout
    done = huajia("detect", str(ours), "--watermark-key", "huajia")  # the public default: no
    assert done.returncode == 1 and "not made by huajia" in done.stdout
    done = huajia("detect", str(theirs), "--watermark-key-file", str(key_file))
    assert done.returncode == 1 and "not made by huajia" in done.stdout  # copied infotext
    marked = tmp_path / "marked"
    done = huajia("generate", "a red circle", "--steps", "2", "--out", str(marked),
                  "--watermark-key", "the server's secret")
    assert done.returncode == 0, done.stderr
    done = huajia("detect", str(next(marked.glob("*.png"))), "--watermark-key-file", str(key_file))
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("args,needle", [
    (("detect", "/nonexistent.png", "--watermark-key", "k"), "/nonexistent.png"),
    (("detect", "/nonexistent.png"), "--watermark-key"),
    (("serve", "--api-keys", "/nonexistent-keys.txt"), "API key file"),
    (("serve", "--nsfw", "maybe"), "nsfw='maybe'"),
    (("serve", "--lora-dir", "/nonexistent-loras"), "--lora-dir"),
    (("serve", "--llm-url", "http://127.0.0.1:9/v1", "--llm-model", "m"), "cannot reach the LLM"),
    (("serve", "--llm-url", "http://127.0.0.1:9/v1"), "--llm-model"),
    (("serve", "--wildcards", "/nonexistent-wildcards"), "--wildcards"),
    (("serve", "--styles-file", "/nonexistent-styles.json"), "styles file"),
])
def test_bad_serve_and_detect_input_is_one_line(args, needle):
    done = huajia(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr
