"""Slow and greedy clients on a real socket: idle, slow headers, slow body, too many
connections from one address. Each is refused in OpenAI's shape and the server stays usable."""

import json
import socket
import time

import httpx
import pytest
from tests.serving.conftest import LiveServer, make_config

from huajia.serving.app import create_app


@pytest.fixture(scope="module")
def server(tmp_path_factory, sd_dir):
    app = create_app(make_config(tmp_path_factory.mktemp("guard"), sd_dir, header_timeout_s=0.6,
                                 body_idle_s=0.6, max_connections_per_client=3))
    with LiveServer(app) as live:
        yield live


def _connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: x\r\n"])
def test_idle_and_slow_header_connections_are_closed_with_a_408(server, sent):
    with _connect(server) as sock:
        sock.sendall(sent)
        start = time.monotonic()
        status, body = _answer(sock)
    assert status == 408 and body["error"]["code"] == "request_timeout"
    assert 0.4 < time.monotonic() - start < 5


def test_a_stalled_body_is_a_408(server):
    with _connect(server) as sock:
        sock.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\ncontent-type: "
                     b"application/json\r\ncontent-length: 100\r\n\r\n{\"prompt\": ")
        status, body = _answer(sock)
    assert status == 408 and "stalled" in body["error"]["message"]


def test_one_address_holds_a_bounded_number_of_connections(server):
    held = [_connect(server) for _ in range(3)]
    try:
        time.sleep(0.1)
        with _connect(server) as extra:
            status, body = _answer(extra)
        assert status == 429 and body["error"]["code"] == "too_many_connections"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200


def test_a_normal_keep_alive_client_is_served_twice(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/health").status_code == 200
        time.sleep(0.3)  # under the header timeout between requests
        assert client.get("/v1/models").status_code == 200


def test_a_stop_answers_waiting_generations_with_a_503_naming_the_saved_job(tmp_path, sd_dir):
    import threading

    app = create_app(make_config(tmp_path, sd_dir, shutdown_timeout_s=0.5, max_batch=1))
    answers, painting, answered = [], threading.Event(), threading.Event()
    with LiveServer(app) as live:
        engine = app.state.service.engine
        paint = engine.generate_batch

        def held_paint(*args, **kwargs):
            # the job is painting until its client has its answer: a fast machine would
            # otherwise finish it before the stop, and the test would race the sampler
            painting.set()
            answered.wait(timeout=60)
            return paint(*args, **kwargs)

        engine.generate_batch = held_paint

        def generate():
            answers.append(httpx.post(f"{live.url}/v1/images/generations", timeout=120,
                                      json={"prompt": "a red circle", "steps": 4}))
            answered.set()

        thread = threading.Thread(target=generate)
        thread.start()
        assert painting.wait(timeout=60), "the job never started painting"
    thread.join(timeout=60)
    assert answers and answers[0].status_code == 503, answers
    error = answers[0].json()["error"]
    assert error["code"] == "server_shutting_down" and "/v1/jobs/" in error["message"]
