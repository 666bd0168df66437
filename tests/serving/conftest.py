"""A live huajia app over a tiny random-weight SD pipeline, and a real uvicorn server for the
clients that need a socket (the openai SDK, the browser)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from huajia.serving.app import create_app
from huajia.serving.config import ServeConfig
from huajia.serving.connections import server_config

KEY = "sk-test-123"


def make_config(tmp_path, sd_dir, **overrides) -> ServeConfig:
    settings = {"data_dir": tmp_path / "data", "model": str(sd_dir), "nsfw": "off",
                "batch_wait_s": 0.02, "rate": 1000.0, "burst": 1000}
    settings.update(overrides)
    return ServeConfig(**settings)


@pytest.fixture(scope="module")
def client(tmp_path_factory, sd_dir):
    app = create_app(make_config(tmp_path_factory.mktemp("serve"), sd_dir))
    with TestClient(app) as test_client:
        yield test_client


def wait_for(condition, what: str, timeout: float = 120.0) -> None:
    """Poll ``condition`` until it holds. ``timeout`` only ends a hung test (it is no measure
    of speed), so it is generous: a slow machine waits longer, it does not fail."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up after {timeout:g} s waiting for {what}"
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``app`` on a real socket, behind the same connection guards as ``huajia serve``."""

    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = app.state.service.config
        self.server = uvicorn.Server(server_config(app, config, "127.0.0.1", self.port,
                                                   log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def connections(self) -> int:
        """How many connections the server holds open (as it sees them, not as clients do)."""
        return len(self.server.server_state.connections)
