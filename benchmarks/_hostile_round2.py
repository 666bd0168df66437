"""Issue 46's cases for benchmarks/hostile.py (a hostile but legal client, round 2): the two
500s, what is painted (style_raw, wildcards), the budget on amplified prompts, native 2048² and
tiny-strength edits (each refused within 5 s), validation gaps, wide bodies beside /health, the
readable 429, a full picture store, tenants, DELETE, keyed provenance and re-encoding."""

from __future__ import annotations

import base64
import io
import json
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from _common import Server
from PIL import Image, ImageOps

GEN = "/v1/images/generations"
BASE = {"prompt": "a red circle left of a blue square", "steps": 2, "size": "64x64", "seed": 3}


def _upload(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _row(name: str, response: httpx.Response | int, expected: set[int], **extra) -> dict:
    status = response if isinstance(response, int) else response.status_code
    return {"case": name, "status": status, "expected": sorted(expected),
            "ok": status in expected, **extra}


def _timed(client: httpx.Client, name: str, body: dict, expected: set[int]) -> dict:
    start = time.perf_counter()
    response = client.post(GEN, json=body)
    seconds = time.perf_counter() - start
    return _row(name, response, expected, seconds=round(seconds, 3),
                within_5_s=seconds < 5, message=response.json()["error"]["message"][:160]
                if response.status_code >= 400 else None)


def budget_and_painted(client: httpx.Client) -> list[dict]:
    """What is painted is filtered and priced; the costly ones refused within 5 s."""
    rows = [_timed(client, "amplified style_raw (1.78 M characters)",
                   {**BASE, "prompt": "a red circle " * 300, "style_raw": "{prompt} " * 444}, {400}),
            _timed(client, "2048² × 35 steps, upscaler none", {**BASE, "size": "2048x2048",
                                                                "upscaler": "none", "steps": 35},
                   {400}),
            _timed(client, "style_raw 'a nude woman, {prompt}'",
                   {**BASE, "style_raw": "a nude woman, {prompt}"}, {400}),
            _timed(client, "wildcards 'a n{u|u}de woman'",
                   {**BASE, "prompt": "a n{u|u}de woman", "expand": "wildcards"}, {400})]
    start = time.perf_counter()
    edit = client.post("/v1/images/variations", data={"steps": "3", "strength": "0.2", "n": "10",
                                                      "size": "2048x2048"},
                       files={"image": ("a.png", _upload(Image.new("RGB", (64, 64)), "PNG"),
                                        "image/png")})
    rows.append(_row("edit with steps × strength < 1", edit, {400},
                     seconds=round(time.perf_counter() - start, 3)))
    return rows


def validation(client: httpx.Client) -> list[dict]:
    rows = [_row("300-character LoRA name", client.post(GEN, json={**BASE, "loras": ["x" * 300]}),
                 {400, 404}),
            _row("4,100-character file name", client.get("/v1/images/files/" + "a" * 4100 + ".png"),
                 {404})]
    for name, patch in [("LoRA scale nan", {"loras": ["x:nan"]}), ("LoRA scale inf", {"loras": ["x:inf"]}),
                        ("LoRA scale 1e308", {"loras": ["x:1e308"]}),
                        ("malformed style_raw weight", {"style_raw": "({prompt}:1.2"}),
                        ("n=true", {"n": True}), ("steps=true", {"steps": True})]:
        rows.append(_row(name, client.post(GEN, json={**BASE, **patch}), {400}))
    echoed = client.post(GEN, json={**BASE, "model": "m" * 15_000_000})
    rows.append(_row("15 MB model name echoed?", echoed, {400, 413},
                     reply_bytes=len(echoed.content)))
    deep = Image.fromarray(np.full((64, 64), 40000, dtype=np.uint16))
    rgb = Image.new("RGB", (64, 64), "white")
    for name, data, kind in [("TIFF upload", _upload(rgb, "TIFF"), "image/tiff"),
                             ("BMP upload", _upload(rgb, "BMP"), "image/bmp"),
                             ("GIF upload", _upload(rgb, "GIF"), "image/gif"),
                             ("16-bit PNG upload", _upload(deep, "PNG"), "image/png"),
                             ("JPEG claiming PNG", _upload(rgb, "JPEG"), "image/png")]:
        rows.append(_row(name, client.post("/v1/images/variations", data={"steps": "2"},
                                           files={"image": ("a", data, kind)}), {400}))
    return rows


def _raw(port: int, sent: bytes, pause: float = 0.0) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(sent)
        time.sleep(pause)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            return -1  # a reset instead of an answer
    return int(data.split()[1]) if data else 0


def connections(server: Server) -> list[dict]:
    body = b'{"prompt": "a red circle"}'
    smuggled = (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\ntransfer-encoding: chunked\r\n\r\n" % len(body) + body)
    rows = [_row("Content-Length with Transfer-Encoding", _raw(server.port, smuggled), {400})]
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(64)]
    try:
        time.sleep(0.3)
        post = (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n" % len(body) + body)
        statuses = [_raw(server.port, post, pause=0.2) for _ in range(5)]
    finally:
        for sock in held:
            sock.close()
    rows.append(_row("65th connection sends a POST, then reads", min(statuses), {429},
                     statuses=statuses))
    return rows


def wide_bodies_and_health(server: Server) -> dict:
    """Four 9.5 MB bodies of 800,000 unknown keys at once while another address polls /health."""
    wide = json.dumps({f"k{i}": 1 for i in range(800_000)}).encode()
    codes, latencies = [], []

    def send() -> None:
        start = time.perf_counter()
        response = httpx.post(f"{server.url}/v1/jobs", content=wide, timeout=120,
                              headers={"content-type": "application/json"})
        codes.append((response.status_code, round(time.perf_counter() - start, 2)))

    threads = [threading.Thread(target=send) for _ in range(4)]
    transport = httpx.HTTPTransport(local_address="127.0.0.9")
    with httpx.Client(transport=transport, timeout=30) as other:
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            start = time.perf_counter()
            other.get(f"{server.url}/health").raise_for_status()
            latencies.append(time.perf_counter() - start)
            time.sleep(0.02)
    for thread in threads:
        thread.join()
    return {"refusals": codes, "health_max_s": round(max(latencies), 3),
            "health_samples": len(latencies), "ok": all(c == 400 for c, _ in codes) and
            max(latencies) < 0.5}


def _poll_health(url: str, stop, out) -> None:
    """/health timed from its own process (the client threads' GIL does not slow it), a new
    connection each time, from one client (``httpx.get`` builds an SSL context per call:
    20 ms of CPU that a 2-core machine would count against the server)."""
    latencies = []
    fresh = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=url, timeout=30, limits=fresh) as client:
        while not stop.is_set():
            start = time.perf_counter()
            client.get("/health")
            latencies.append(time.perf_counter() - start)
            time.sleep(0.02)
    out.put(latencies)


def reencoding(server: Server, url: str, distinct: bool) -> dict:
    """48 WebP requests of one result at once (one quality, or 48 different ones: a cache-busting
    client), /health timed beside them; 503s are the meter refusing more waiting encodings."""
    import multiprocessing

    path = url.split(server.url, 1)[1]
    codes = []
    # one client, 48 connections: 48 × httpx.get would spend a second of CPU on SSL contexts
    shared = httpx.Client(base_url=server.url, timeout=300,
                          limits=httpx.Limits(max_connections=48))

    def ask(k: int) -> None:
        quality = 30 + k if distinct else 80
        codes.append(shared.get(f"{path}&format=webp&quality={quality}").status_code)

    context = multiprocessing.get_context("spawn")
    stop, out = context.Event(), context.Queue()
    poller = context.Process(target=_poll_health, args=(server.url, stop, out))
    poller.start()
    time.sleep(1.0)  # the poller's interpreter has started
    start = time.perf_counter()
    threads = [threading.Thread(target=ask, args=(k,)) for k in range(48)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    shared.close()
    stop.set()
    latencies = out.get()
    poller.join()
    return {"ok_answers": codes.count(200), "busy_503": codes.count(503), "wall_s": round(wall, 2),
            "health_max_s": round(max(latencies or [0]), 3),
            "health_p50_s": round(sorted(latencies)[len(latencies) // 2], 3) if latencies else 0}


def privacy_and_provenance(server: Server, client: httpx.Client) -> list[dict]:
    job = client.post("/v1/jobs", json={**BASE, "seed": 11}).json()["id"]
    while client.get(f"/v1/jobs/{job}").json()["status"] not in ("done", "failed"):
        time.sleep(0.2)
    result = client.get(f"/v1/jobs/{job}/result", params={"response_format": "url"}).json()
    url = result["data"][0]["url"]
    png = client.get(url.split(server.url, 1)[1]).content
    picture = Image.open(io.BytesIO(png))
    verify = lambda image: client.post("/v1/provenance/verify", json={  # noqa: E731
        "image": base64.b64encode(_upload(image, "PNG")).decode()}).json()["made_here"]
    from huajia.serving.provenance import embed_watermark

    rows = [_row("our result, horizontally flipped, made_here", 200 if verify(
                 ImageOps.mirror(picture.convert("RGB"))) else 0, {200}),
            _row("a picture marked with the public default key: not made_here",
                 0 if verify(embed_watermark(Image.new("RGB", (128, 128), (120, 130, 140)),
                                             "huajia")) else 200, {200})]
    big = client.post(GEN, json={**BASE, "size": "2048x2048", "response_format": "url"})
    for distinct in (False, True):
        found = reencoding(server, big.json()["data"][0]["url"], distinct)
        codes = {200} if found["ok_answers"] + found["busy_503"] == 48 else {0}
        name = "48 qualities" if distinct else "one quality"
        rows.append(_row(f"re-encoding a 2048² result 48 × as WebP, {name}", 200, codes, **found))
    rows.append(_row("DELETE a finished job", client.delete(f"/v1/jobs/{job}"), {200, 204}))
    rows.append(_row("its result after DELETE", client.get(f"/v1/jobs/{job}/result"), {404}))
    rows.append(_row("its file URL after DELETE", client.get(url.split(server.url, 1)[1]), {404}))
    return rows


def tenants_and_store(model: str) -> list[dict]:
    """Two API keys on a server whose picture store holds about 4 results."""
    keys = Path(tempfile.mkdtemp()) / "keys.txt"
    keys.write_text("sk-a\nsk-b\n")
    with Server(model, ["--api-keys", str(keys), "--images-max-bytes", "60000"]) as server:
        a = httpx.Client(base_url=server.url, timeout=120, headers={"Authorization": "Bearer sk-a"})
        b = httpx.Client(base_url=server.url, timeout=120, headers={"Authorization": "Bearer sk-b"})
        first = a.post(GEN, json=BASE)
        start = time.perf_counter()
        repeat = b.post(GEN, json=BASE)
        b_seconds = time.perf_counter() - start
        start = time.perf_counter()
        a.post(GEN, json=BASE)
        a_seconds = time.perf_counter() - start
        rows = [_row("another tenant's repeat is painted, not cached", repeat, {200},
                     tenant_b_s=round(b_seconds, 3), own_repeat_s=round(a_seconds, 3),
                     first_status=first.status_code)]
        seed, answer = 100, None
        while seed < 140 and (answer := a.post(GEN, json={**BASE, "seed": seed})).status_code == 200:
            seed += 1
        rows.append(_row("full picture store", answer, {507},
                         message=answer.json()["error"]["message"][:160]))
        rows.append(_row("first result still served after the store filled",
                         a.post(GEN, json=BASE), {200}))
    return rows


def round_two(model: str, lora_dir: str) -> dict:
    with Server(model, ["--header-timeout-s", "2", "--lora-dir", lora_dir]) as server:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            rows = budget_and_painted(client) + validation(client) + connections(server)
            wide = wide_bodies_and_health(server)
            rows.append(_row("4 × 800k-key bodies, /health < 0.5 s", 200 if wide["ok"] else 0,
                             {200}, **wide))
            rows += privacy_and_provenance(server, client)
    rows += tenants_and_store(model)
    return {"cases": rows, "server_errors": sum(r["status"] >= 500 and r["status"] not in
                                                r["expected"] for r in rows),
            "unexpected": [r["case"] for r in rows if not r["ok"]]}
