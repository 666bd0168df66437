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
    embed_watermark(picture).save(ours, quality=80)  # re-encoded: the infotext is gone
    save_png(picture, theirs, "a red circle\nSteps: 20, Version: huajia 0.1.0")
    done = huajia("detect", str(ours))
    assert done.returncode == 0 and "made by huajia" in done.stdout
    done = huajia("detect", str(theirs))  # copied infotext does not make it ours
    assert done.returncode == 1 and "not made by huajia" in done.stdout


@pytest.mark.parametrize("args,needle", [
    (("detect", "/nonexistent.png"), "/nonexistent.png"),
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
