import io

import numpy as np
import pytest
from PIL import Image

from huajia.serving.provenance import MIN_CORRELATION, check_provenance, embed_watermark
from huajia.world import sampler
from huajia.world.render import render


def _pictures(count: int = 6):
    return [render(sampler.sample_scene(np.random.default_rng(i), "train", seed=i), 128)
            for i in range(count)]


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("attack", ["none", "jpeg90", "jpeg75", "resize0.9", "resize1.5"])
def test_watermark_survives_mild_reencoding(attack):
    for picture in _pictures():
        marked = embed_watermark(picture)
        if attack.startswith("jpeg"):
            marked = _jpeg(marked, int(attack[4:]))
        elif attack.startswith("resize"):
            side = round(128 * float(attack[6:]))
            marked = marked.resize((side, side), Image.LANCZOS)
        assert check_provenance(marked).made_here, attack


def test_unmarked_pictures_are_not_ours_and_the_mark_is_faint():
    for picture in _pictures(12):
        assert check_provenance(picture).watermark_score < MIN_CORRELATION
        assert not check_provenance(_jpeg(picture, 75)).made_here
        marked = np.asarray(embed_watermark(picture), dtype=float)
        assert np.abs(marked - np.asarray(picture, dtype=float)).max() <= 6  # ±3 levels + headroom


def test_another_key_does_not_match():
    marked = embed_watermark(_pictures(1)[0], key="huajia")
    assert check_provenance(marked, key="huajia").made_here
    assert not check_provenance(marked, key="someone-else").made_here
