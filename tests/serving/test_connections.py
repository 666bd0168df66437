"""Slow and greedy clients on a real socket: idle, slow headers, slow body, too many
connections from one address. Each is refused in OpenAI's shape and the server stays usable."""

import http.client
import json
import socket
import time

import httpx
import pytest
from tests.serving.conftest import LiveServer, make_config, wait_for

from huajia.serving.app import create_app


@pytest.fixture(scope="module")
def impatient(tmp_path_factory, sd_dir):
    """Closes a connection whose request headers are not in within 0.6 s."""
    app = create_app(make_config(tmp_path_factory.mktemp("impatient"), sd_dir,
                                 header_timeout_s=0.6))
    with LiveServer(app) as live:
        yield live


@pytest.fixture(scope="module")
def server(tmp_path_factory, sd_dir):
    """Patient with headers, so that a client the machine is slow to run is never cut off
    mid-test; quick with stalled bodies; three connections an address."""
    app = create_app(make_config(tmp_path_factory.mktemp("guard"), sd_dir, header_timeout_s=120,
                                 body_idle_s=0.6, max_connections_per_client=3))
    with LiveServer(app) as live:
        yield live


def _connect(server) -> socket.socket:
    # the timeout only ends a hung test: every answer here comes from the server closing
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: x\r\n"])
def test_idle_and_slow_header_connections_are_closed_with_a_408(impatient, sent):
    opened = time.monotonic()  # before the connection: a slow machine can only add to the wait
    with _connect(impatient) as sock:
        sock.sendall(sent)
        status, body = _answer(sock)  # returns once the server has closed the connection
    assert status == 408 and body["error"]["code"] == "request_timeout"
    assert "within 0.6 s" in body["error"]["message"]
    assert time.monotonic() - opened > 0.5  # closed by the timer, not at once


def test_a_stalled_body_is_a_408(server):
    with _connect(server) as sock:
        sock.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\ncontent-type: "
                     b"application/json\r\ncontent-length: 100\r\n\r\n{\"prompt\": ")
        status, body = _answer(sock)
    assert status == 408 and "stalled" in body["error"]["message"]


def test_one_address_holds_a_bounded_number_of_connections(server):
    wait_for(lambda: server.connections == 0, "earlier tests' connections to close")
    held = [_connect(server) for _ in range(3)]
    try:
        wait_for(lambda: server.connections == 3, "the server to take the three connections")
        with _connect(server) as extra:
            status, body = _answer(extra)
        assert status == 429 and body["error"]["code"] == "too_many_connections"
        for _ in range(3):  # a client that sends its request first still reads the 429
            with _connect(server) as extra:
                extra.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\ncontent-type: application"
                              b"/json\r\ncontent-length: 30\r\n\r\n" + b'{"prompt": "a red circle"}    ')
                time.sleep(0.2)  # the request is in before the client reads
                status, body = _answer(extra)
            assert status == 429 and "too many connections" in body["error"]["message"]
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: server.connections == 0, "the server to see the three closed")
    assert httpx.get(f"{server.url}/health", timeout=60).status_code == 200


def test_a_normal_keep_alive_client_is_served_twice(server):
    # http.client neither retries nor reconnects: a second answer comes on the first socket
    client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        sockets = []
        for path in ("/health", "/v1/models"):
            client.request("GET", path)
            response = client.getresponse()
            assert response.status == 200 and not response.will_close
            response.read()
            sockets.append(client.sock)
        assert sockets[0] is sockets[1]
    finally:
        client.close()


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
