import base64
import io
import json
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tests.serving.conftest import KEY, make_config, wait_for

from huajia.engine.infotext import parse_infotext
from huajia.serving.app import create_app
from huajia.serving.service import FINAL_STATES

BODY = {"prompt": "a red circle left of a blue square", "seed": 7, "steps": 3, "size": "64x64"}


def _png(item: dict) -> bytes:
    return base64.b64decode(item["b64_json"])


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def test_generation_returns_openai_shape_with_infotext_and_watermark(client):
    response = client.post("/v1/images/generations", json={**BODY, "n": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["created"], int) and len(body["data"]) == 2
    assert [d["seed"] for d in body["data"]] == [7, 8]
    image = Image.open(io.BytesIO(_png(body["data"][0])))
    assert image.size == (64, 64)
    assert "Seed: 7" in image.info["parameters"] and "huajia" in image.info["parameters"]
    verdict = client.post("/v1/provenance/verify",
                          json={"image": body["data"][0]["b64_json"]}).json()
    # the tiny random model paints pure noise, which drowns a 3-level watermark; the
    # watermark itself is tested on world pictures in test_provenance.py
    assert verdict["infotext_says_huajia"] and verdict["threshold"] > 0


def test_cache_hit_is_bit_identical_and_skips_the_model(client):
    service = client.app.state.service
    first = client.post("/v1/images/generations", json={**BODY, "seed": 99}).json()
    batches = len(service.batches)
    second = client.post("/v1/images/generations", json={**BODY, "seed": 99}).json()
    assert _png(first["data"][0]) == _png(second["data"][0])
    assert len(service.batches) == batches  # answered from the cache
    other = client.post("/v1/images/generations", json={**BODY, "seed": 99, "guidance": 2.0})
    assert _png(other.json()["data"][0]) != _png(first["data"][0])


def test_url_results_are_served_by_the_api(client):
    body = client.post("/v1/images/generations", json={**BODY, "response_format": "url"}).json()
    url = body["data"][0]["url"]
    assert "/v1/images/files/" in url and "sig=" in url
    fetched = client.get(url.split("testserver", 1)[1])
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    tampered = client.get(url.split("testserver", 1)[1].replace("sig=", "sig=0"))
    assert tampered.status_code == 200  # no keys configured: signature not needed


@pytest.mark.parametrize("patch, param", [
    ({"prompt": ""}, "prompt"), ({"n": 0}, "n"), ({"size": "7x7"}, None),
    ({"size": "big"}, None), ({"style": "nope"}, None), ({"steps": 0}, "steps"),
    ({"unknown_field": 1}, "unknown_field"), ({"prompt": "(unclosed:1.2"}, None),
    ({"model": "sd-9000"}, None), ({"background": "transparent"}, None),
    ({"loras": ["x"]}, None), ({"seed": -1}, "seed"), ({"seed": 2**63 - 1, "n": 2}, None),
    ({"prompt": "(x:nan)"}, None), ({"prompt": "\u200b\u200b"}, None),
    # the shapes critic cannot judge a bands plan: refused at submit, not failed in the queue
    ({"think": True, "planner": "bands"}, None),
])
def test_bad_input_is_a_400_in_openai_shape(client, patch, param):
    error = _error(client.post("/v1/images/generations", json={**BODY, **patch}), 400)
    assert error["type"] == "invalid_request_error"
    if param:
        assert error["param"] == param


def test_malformed_json_and_blocked_prompts_are_400(client):
    _error(client.post("/v1/images/generations", content=b"{not json",
                       headers={"content-type": "application/json"}), 400)
    for prompt in ("a n.u.d.e woman", "ＮＵＤＥ", "裸 体 女人"):
        error = _error(client.post("/v1/images/generations", json={**BODY, "prompt": prompt}),
                       400)
        assert "blocked" in error["message"]


def test_async_job_events_and_result(client):
    job = client.post("/v1/jobs", json={**BODY, "seed": 123}).json()
    assert job["status"] in ("queued", "running", "done") and job["object"] == "image.job"
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
        text = "".join(stream.iter_text())
    assert "event: progress" in text and "event: end" in text and '"status": "done"' in text
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "done"
    result = client.get(f"/v1/jobs/{job['id']}/result").json()
    assert len(result["data"]) == 1 and result["data"][0]["seed"] == 123
    _error(client.get("/v1/jobs/nope"), 404)


def test_thinking_job_streams_thoughts(client):
    job = client.post("/v1/jobs", json={**BODY, "seed": 5, "steps": 6, "think": True,
                                        "pauses": 2, "repaints": 1, "compose_tries": 1}).json()
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
        events = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
    thoughts = [e for e in events if e["type"] == "thought"]
    assert thoughts and thoughts[0]["phase"] == "plan" and events[-1]["status"] == "done"
    assert "compose" in [t["phase"] for t in thoughts]  # the tiny model's regions all fail
    image = Image.open(io.BytesIO(_png(client.get(f"/v1/jobs/{job['id']}/result").json()
                                       ["data"][0])))
    fields = parse_infotext(image.info["parameters"])
    options = json.loads(fields["Think options"])  # what repaints it (huajia think --infotext)
    assert fields["Critic"] == "shapes" and options["pauses"] == 2
    assert options["compose_tries"] == 1 and options["max_repaints"] == 1


def test_compatible_jobs_share_one_batch(tmp_path, sd_dir):
    # a window far longer than the posts take, however slow the machine: each batch is claimed
    # the moment its fourth job arrives, so the batches depend on the jobs, not on a clock
    app = create_app(make_config(tmp_path, sd_dir, batch_wait_s=600.0, max_batch=4))
    with TestClient(app) as client:
        service = app.state.service
        paint, calls = service.painter.generate, []

        def recorded(specs, on_step=None):
            calls.append([spec.request.width for spec in specs])
            return paint(specs, on_step=on_step)

        service.painter.generate = recorded
        # jobs of another size arrive in between: they cannot share the call, so they wait for
        # their own batch
        sizes = [64, 128, 64, 64, 128, 64, 128, 128]
        ids = [client.post("/v1/jobs", json={**BODY, "prompt": f"{k} red circles", "seed": k,
                                             "size": f"{side}x{side}"}).json()["id"]
               for k, side in enumerate(sizes, start=2)]
        wait_for(lambda: all(client.get(f"/v1/jobs/{i}").json()["status"] in FINAL_STATES
                             for i in ids), "the eight jobs")
        assert [client.get(f"/v1/jobs/{i}").json()["status"] for i in ids] == ["done"] * 8
        assert service.batches == [4, 4] and calls == [[64] * 4, [128] * 4]


def test_cancel_a_queued_job(tmp_path, sd_dir):
    # the job waits for seven companions that never come: it is still queued at the cancel
    app = create_app(make_config(tmp_path, sd_dir, batch_wait_s=600.0, max_batch=8))
    with TestClient(app) as client:
        job = client.post("/v1/jobs", json=BODY).json()
        cancelled = client.post(f"/v1/jobs/{job['id']}/cancel").json()
        assert cancelled["status"] == "cancelled"
        error = _error(client.get(f"/v1/jobs/{job['id']}/result"), 409)
        assert "cancelled" in error["message"]
        assert app.state.service.batches == []  # never painted


def test_api_keys_and_rate_limit(tmp_path, sd_dir):
    app = create_app(make_config(tmp_path, sd_dir, api_keys=(KEY,), rate=0.01, burst=2))
    with TestClient(app) as client:
        health = client.get("/health")
        assert health.status_code == 200
        # the model was loaded and warmed up (one step) before the first client
        assert set(health.json()["start"]) == {"load_s", "warm_up_s"}
        for path in ("/", "/v1/models", "/v1/styles", "/v1/jobs/x", "/openapi.json", "/docs",
                     "/v1/images/files/x.png"):
            assert _error(client.get(path), 401)["type"] == "authentication_error"
        _error(client.get("/v1/models", headers={"Authorization": "Bearer wrong"}), 401)
        auth = {"Authorization": f"Bearer {KEY}"}
        models = client.get("/v1/models", headers=auth).json()
        assert models["data"][0]["object"] == "model"
        assert client.get(f"/v1/models?key={KEY}").status_code == 200
        assert "/v1/images/generations" in client.get("/openapi.json", headers=auth).json()["paths"]
        assert client.get(f"/docs?key={KEY}").status_code == 200
        for _ in range(2):
            assert client.post("/v1/jobs", json=BODY, headers=auth).status_code == 202
        limited = client.post("/v1/jobs", json=BODY, headers=auth)
        assert _error(limited, 429)["type"] == "rate_limit_error"
        assert int(limited.headers["Retry-After"]) >= 1
        verify = client.post("/v1/provenance/verify", json={"image": "AAAA"}, headers=auth)
        assert _error(verify, 429)["type"] == "rate_limit_error"  # verifying is limited too
        # a signed URL works without the key until it expires; an unsigned one does not
        job = client.post("/v1/jobs", json=BODY, headers={"Authorization": "Bearer x"})
        assert job.status_code == 401


def test_signed_urls_expire(tmp_path, sd_dir):
    app = create_app(make_config(tmp_path, sd_dir, api_keys=(KEY,), url_ttl_s=1))
    now = [time.time()]
    app.state.files.clock = lambda: now[0]  # the URLs' clock stands still until moved here
    auth = {"Authorization": f"Bearer {KEY}"}
    with TestClient(app) as client:
        body = client.post("/v1/images/generations", json={**BODY, "response_format": "url"},
                           headers=auth).json()
        path = body["data"][0]["url"].split("testserver", 1)[1]
        assert "exp=" in path and client.get(path).status_code == 200  # no key needed
        forged = path.replace("exp=", "exp=9")  # a later expiry breaks the signature
        assert client.get(forged).status_code == 401
        now[0] += 2  # past the expiry
        assert _error(client.get(path), 401)["type"]  # expired: the key is needed again
        assert client.get(path, headers=auth).status_code == 200


def test_nsfw_policy_blurs_or_refuses(tmp_path, sd_dir, monkeypatch):
    from huajia.scorers import nsfw

    monkeypatch.setattr(nsfw.NsfwDetector, "score", lambda self, image: 0.99)
    refuse = create_app(make_config(tmp_path / "refuse", sd_dir, nsfw="refuse"))
    with TestClient(refuse) as client:
        error = _error(client.post("/v1/images/generations", json=BODY), 400)
        assert "safety" in error["message"]
    blur = create_app(make_config(tmp_path / "blur", sd_dir, nsfw="blur"))
    plain = create_app(make_config(tmp_path / "plain", sd_dir, nsfw="off"))
    with TestClient(blur) as client:
        blurred = Image.open(io.BytesIO(_png(client.post("/v1/images/generations",
                                                         json=BODY).json()["data"][0])))
    with TestClient(plain) as client:
        sharp = Image.open(io.BytesIO(_png(client.post("/v1/images/generations",
                                                       json=BODY).json()["data"][0])))
    edges = [np.abs(np.diff(np.asarray(im.convert("L"), dtype=float), axis=1)).sum()
             for im in (blurred, sharp)]
    assert edges[0] < 0.5 * edges[1]


def test_provenance_rejects_foreign_and_broken_images(client):
    from huajia.world import sampler
    from huajia.world.render import render

    picture = render(sampler.sample_scene(np.random.default_rng(3), "train", seed=3), 128)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    verdict = client.post("/v1/provenance/verify",
                          json={"image": base64.b64encode(buffer.getvalue()).decode()}).json()
    assert not verdict["made_here"] and verdict["infotext"] is None
    _error(client.post("/v1/provenance/verify", json={"image": "!!!"}), 400)
    _error(client.post("/v1/provenance/verify",
                       json={"image": base64.b64encode(b"not a picture").decode()}), 400)


def test_framework_errors_are_openai_shaped(client):
    """Unknown routes (404), wrong methods (405) and bad query values (422 in FastAPI) come back
    as OpenAI's error body, not FastAPI's {"detail": …}."""
    for response, status in ((client.get("/v1/nope"), 404),
                             (client.delete("/v1/images/generations"), 405),
                             (client.get("/v1/jobs/x/result?output_compression=500"), 400)):
        error = _error(response, status)
        assert error["type"] in ("not_found_error", "invalid_request_error") and error["message"]
    assert "allowed" in _error(client.put("/health"), 405)["message"]


def test_docs_do_not_reflect_the_key_unescaped(tmp_path, sd_dir):
    app = create_app(make_config(tmp_path, sd_dir, api_keys=(KEY,)))
    with TestClient(app) as client:
        page = client.get("/docs", params={"key": "<script>alert(1)</script>"},
                          headers={"Authorization": f"Bearer {KEY}"})
        assert page.status_code == 200 and "<script>alert" not in page.text
        assert "%3Cscript%3E" in page.text  # passed on, URL-encoded


def test_a_huge_body_is_a_413_before_it_is_read(tmp_path, sd_dir):
    app = create_app(make_config(tmp_path, sd_dir, max_body_bytes=1024))
    with TestClient(app) as client:
        big = json.dumps({"prompt": "a red circle " * 200}).encode()
        error = _error(client.post("/v1/images/generations", content=big,
                                   headers={"content-type": "application/json"}), 413)
        assert error["code"] == "request_too_large"

        def chunks():  # no Content-Length: counted as it streams
            for _ in range(8):
                yield b" " * 512

        _error(client.post("/v1/images/generations", content=chunks(),
                           headers={"content-type": "application/json"}), 413)
        assert client.get("/health").status_code == 200


def test_provenance_refuses_a_decompression_bomb_from_its_header(client):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)  # 400 megapixels, grey
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(b"\x00" * 20001)) + chunk(b"IEND", b""))
    error = _error(client.post("/v1/provenance/verify",
                               json={"image": base64.b64encode(bomb).decode()}), 400)
    assert "16 megapixels" in error["message"] and error["param"] == "image"
    header = struct.pack(">IIBBBBB", 5000, 5000, 8, 0, 0, 0, 0)  # under Pillow's own limit
    big = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
           chunk(b"IDAT", zlib.compress(b"\x00" * 5001)) + chunk(b"IEND", b""))
    error = _error(client.post("/v1/provenance/verify",
                               json={"image": base64.b64encode(big).decode()}), 400)
    assert "5000x5000" in error["message"]  # refused from the header, never decoded


def test_without_keys_each_client_address_has_its_own_bucket(tmp_path, sd_dir):
    app = create_app(make_config(tmp_path, sd_dir, rate=0.01, burst=2))
    with TestClient(app, client=("10.0.0.1", 1000)) as greedy:
        for _ in range(2):
            assert greedy.post("/v1/jobs", json=BODY).status_code == 202
        assert _error(greedy.post("/v1/jobs", json=BODY), 429)["type"] == "rate_limit_error"
        other = TestClient(app, client=("10.0.0.2", 1000))
        assert other.post("/v1/jobs", json=BODY).status_code == 202  # not the greedy one's 429
