"""The server over a real socket: the official openai SDK, schemathesis against the OpenAPI
document, and kill -9 of a real `huajia serve` process with jobs queued."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image
from tests.serving.conftest import KEY, LiveServer, free_port, make_config

from huajia.serving.app import create_app
from huajia.serving.queue import JobQueue


def test_openai_sdk_works_unchanged(tmp_path, sd_dir):
    openai = pytest.importorskip("openai")
    app = create_app(make_config(tmp_path, sd_dir, api_keys=(KEY,)))
    with LiveServer(app) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
        result = client.images.generate(model=str(sd_dir), prompt="两个红色圆形", n=2,
                                        size="64x64", response_format="b64_json")
        assert len(result.data) == 2
        image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
        assert image.size == (64, 64) and result.data[0].revised_prompt == "两个红色圆形"
        urls = client.images.generate(prompt="a blue star", size="64x64", response_format="url",
                                      extra_body={"seed": 3, "steps": 2})
        assert httpx.get(urls.data[0].url).status_code == 200  # signed: no key needed
        with pytest.raises(openai.BadRequestError, match="width"):
            client.images.generate(prompt="a blue star", size="7x7")
        bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.images.generate(prompt="a blue star")


def test_openai_apps_get_aliases_models_retrieve_and_big_sizes(tmp_path):
    """What apps built on the SDK send: model="dall-e-3", models.retrieve, size="1024x1024"
    (painted at the embedded model's native 128 px, then upscaled: fast, and a real picture)."""
    openai = pytest.importorskip("openai")
    from huajia.world.parser import read_prompt
    from huajia.world.verifier import verify

    app = create_app(make_config(tmp_path, "embedded"))
    with LiveServer(app) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
        assert client.models.retrieve("embedded").id == "embedded"
        assert client.models.retrieve("dall-e-3").id == "dall-e-3"
        assert {m.id for m in client.models.list()} >= {"embedded", "dall-e-2", "gpt-image-1"}
        with pytest.raises(openai.NotFoundError, match="not served here"):
            client.models.retrieve("sd-9000")
        result = client.images.generate(model="dall-e-3", prompt="a large red circle",
                                        size="1024x1024", response_format="b64_json",
                                        extra_body={"seed": 2})
        assert result.model == "embedded"  # which model painted
        image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
        assert image.size == (1024, 1024)
        assert "Size: 128x128" in image.info["parameters"]  # the native size is recorded
        assert "Hires resize: 1024x1024" in image.info["parameters"]
        # one large red circle, not a field of tiny dots
        assert verify(image.resize((128, 128)), read_prompt("a large red circle").spec).passed
        jpeg = client.images.generate(model="gpt-image-1", prompt="a blue star", size="128x128",
                                      extra_body={"seed": 1, "output_format": "jpeg"})
        data = base64.b64decode(jpeg.data[0].b64_json)
        assert data[:2] == b"\xff\xd8" and jpeg.output_format == "jpeg"


# ``huajia serve`` that stops half-way through its second job's steps, however fast the machine
# paints: it says so in a file, then waits there to be killed
HELD_SERVE = """
import os, sys, threading
from pathlib import Path
from huajia.serving import painter

marker, sys.argv = Path(sys.argv[1]), ["huajia", *sys.argv[2:]]
generate, calls = painter.LocalPainter.generate, []

def held(self, specs, on_step=None):
    calls.append(len(specs))

    def step(done, total):
        if len(calls) == 2 and done == total // 2:
            marker.with_suffix(".tmp").write_text(str(done))
            os.replace(marker.with_suffix(".tmp"), marker)
            threading.Event().wait()
        if on_step:
            on_step(done, total)

    return generate(self, specs, on_step=step)

painter.LocalPainter.generate = held
from huajia.cli import main
main()
"""


def _serve(sd_dir, data_dir, port, held: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    program = ["-c", HELD_SERVE, str(held)] if held else ["-m", "huajia"]
    return subprocess.Popen([sys.executable, *program, "serve", "--model", str(sd_dir),
                             "--data-dir", str(data_dir), "--port", str(port), "--nsfw", "off",
                             "--max-batch", "1"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _wait_up(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("server did not come up")


def test_kill_9_with_jobs_queued_loses_nothing(tmp_path, sd_dir):
    data, port, held = tmp_path / "data", free_port(), tmp_path / "held"
    url = f"http://127.0.0.1:{port}"
    proc = _serve(sd_dir, data, port, held)
    try:
        _wait_up(url, proc)
        body = {"prompt": "a red circle", "steps": 8, "size": "128x128"}
        ids = [httpx.post(f"{url}/v1/jobs", json={**body, "seed": s}).json()["id"]
               for s in range(6)]
        deadline = time.monotonic() + 180  # ends a hung test; a slow machine only waits longer
        while not held.exists():  # killed with one job done and the next one mid-way
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        states = [JobQueue(data / "jobs.sqlite").get(i).state for i in ids]
        assert states == ["done", "running"] + ["queued"] * 4  # the crash left work behind
        proc = _serve(sd_dir, data, port)
        _wait_up(url, proc)
        deadline = time.monotonic() + 180
        while any(httpx.get(f"{url}/v1/jobs/{i}").json()["status"] != "done" for i in ids):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        queue = JobQueue(data / "jobs.sqlite")
        assert [queue.completions(i) for i in ids] == [1] * len(ids)  # none done twice
        for job_id in ids:
            result = httpx.get(f"{url}/v1/jobs/{job_id}/result").json()
            assert len(result["data"]) == 1
    finally:
        proc.kill()
