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


def _serve(sd_dir, data_dir, port) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "huajia", "serve", "--model", str(sd_dir),
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
    data, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(sd_dir, data, port)
    try:
        _wait_up(url, proc)
        body = {"prompt": "a red circle", "steps": 40, "size": "128x128"}
        ids = [httpx.post(f"{url}/v1/jobs", json={**body, "seed": s}).json()["id"]
               for s in range(6)]
        deadline = time.monotonic() + 60  # kill while some are done and one is mid-way
        while httpx.get(f"{url}/v1/jobs/{ids[0]}").json()["status"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        states = {JobQueue(data / "jobs.sqlite").get(i).state for i in ids}
        assert "queued" in states  # the crash really left work behind
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
