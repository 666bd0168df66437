import asyncio
import io
import threading

import pytest
from PIL import Image

from huajia.serving import encoding
from huajia.serving.encoding import Reencoder, ReencodingBusy


def _png(colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, "PNG")
    return buffer.getvalue()


def test_reencoding_is_metered_and_shared(monkeypatch):
    """Two different encodings may wait; a third is refused (503), while a request for one
    already under way joins it and a cached one is served at once."""
    release, started = threading.Event(), []

    def slow(png, output_format, quality):
        started.append(quality)
        release.wait(10)
        return f"{output_format}:{quality}".encode()

    monkeypatch.setattr(encoding, "encode_as", slow)
    encoder = Reencoder(workers=1, max_waiting=2)

    async def scenario():
        first = asyncio.ensure_future(encoder.encode("a.png", _png(), "webp", 80))
        second = asyncio.ensure_future(encoder.encode("a.png", _png(), "webp", 70))
        joined = asyncio.ensure_future(encoder.encode("a.png", _png(), "webp", 80))
        await asyncio.sleep(0.05)
        with pytest.raises(ReencodingBusy, match="retry shortly, or ask for format=png"):
            await encoder.encode("a.png", _png(), "webp", 60)
        assert await encoder.encode("a.png", b"png bytes", "png", 100) == b"png bytes"
        release.set()
        answers = await asyncio.gather(first, second, joined)
        assert answers == [b"webp:80", b"webp:70", b"webp:80"]
        assert await encoder.encode("a.png", _png(), "webp", 60) == b"webp:60"  # room again
        assert await encoder.encode("a.png", _png(), "webp", 80) == b"webp:80"  # cached

    try:
        asyncio.run(scenario())
    finally:
        encoder.close()
    assert sorted(started) == [60, 70, 80] and encoder.encoded == 3


def test_the_default_pool_leaves_the_event_loop_a_core(monkeypatch):
    monkeypatch.setattr(encoding.os, "cpu_count", lambda: 2)
    encoder = Reencoder()
    try:
        assert encoder._pool._max_workers == 1
    finally:
        encoder.close()


def test_a_busy_reencoder_is_a_503_with_retry_after(tmp_path, sd_dir):
    from fastapi.testclient import TestClient
    from tests.serving.conftest import make_config

    from huajia.serving.app import create_app

    with TestClient(create_app(make_config(tmp_path, sd_dir))) as hostile:
        _busy_answers(hostile)


def _busy_answers(hostile) -> None:
    body = hostile.post("/v1/images/generations", json={
        "prompt": "a red circle", "steps": 2, "size": "64x64", "response_format": "url"}).json()
    url = body["data"][0]["url"].split("testserver", 1)[1]
    hostile.app.state.files.encoder.max_waiting = 0
    answer = hostile.get(url + "&format=webp&quality=33")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.json()["error"]["code"] == "server_busy"
    assert hostile.get(url).status_code == 200  # PNG is sent as stored
