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


def test_the_mark_survives_a_horizontal_flip_and_only_the_servers_key_counts(tmp_path, sd_dir):
    import base64

    from fastapi.testclient import TestClient
    from PIL import ImageOps
    from tests.serving.conftest import make_config

    from huajia.serving.app import create_app

    for picture in _pictures(4):
        flipped = ImageOps.mirror(embed_watermark(picture, "k"))
        assert check_provenance(flipped, "k").made_here
        assert check_provenance(_jpeg(flipped, 85), "k").made_here
        assert not check_provenance(ImageOps.mirror(picture), "k").made_here
    config = make_config(tmp_path, sd_dir)
    with TestClient(create_app(config)) as client:
        key = client.app.state.service.watermark_key
        assert key != "huajia" and len(key) >= 32
        assert (config.data_dir / "watermark-key").stat().st_mode & 0o077 == 0  # private

        def verify(image) -> bool:
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            return client.post("/v1/provenance/verify", json={
                "image": base64.b64encode(buffer.getvalue()).decode()}).json()["made_here"]

        picture = _pictures(1)[0]
        assert verify(embed_watermark(picture, key))
        assert verify(ImageOps.mirror(embed_watermark(picture, key)))
        assert not verify(embed_watermark(picture))  # the public default key forges nothing
    with TestClient(create_app(config)) as client:  # the same key after a restart
        assert client.app.state.service.watermark_key == key
