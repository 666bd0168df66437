import pytest

from huajia.serving.cache import ResultCache, cache_key
from huajia.serving.ratelimit import TokenBuckets


def test_cache_key_covers_every_parameter():
    base = {"prompt": "a red circle", "seed": 1, "steps": 20, "loras": [["a.safetensors", 0.8]]}
    assert cache_key("embedded@abc", base) == cache_key("embedded@abc", dict(reversed(base.items())))
    for change in ({"seed": 2}, {"steps": 21}, {"loras": [["a.safetensors", 0.7]]}):
        assert cache_key("embedded@abc", {**base, **change}) != cache_key("embedded@abc", base)
    assert cache_key("embedded@def", base) != cache_key("embedded@abc", base)


def test_cache_hits_are_byte_identical_and_capped(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=2500)
    cache.put("k1", b"x" * 1000)
    cache.put("k2", b"y" * 1000)
    assert cache.get("k1") == b"x" * 1000  # k1 is now the most recently used
    cache.put("k3", b"z" * 1000)  # over the cap: the least recently used (k2) goes
    assert cache.get("k2") is None and cache.get("k1") and cache.get("k3")
    assert cache.size() <= 2500
    assert ResultCache(tmp_path, max_bytes=2500).get("k3") == b"z" * 1000  # persists


def test_token_buckets_with_a_fake_clock():
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("alice") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = buckets.take("alice")
    assert wait == pytest.approx(0.5) and TokenBuckets.retry_after(wait) == 1
    assert buckets.take("bob") == 0.0  # keys are independent
    now[0] += 0.5
    assert buckets.take("alice") == 0.0


def test_a_full_image_store_refuses_new_work_and_keeps_finished_results(tmp_path, sd_dir):
    from fastapi.testclient import TestClient
    from tests.serving.conftest import make_config

    from huajia.serving.app import create_app

    app = create_app(make_config(tmp_path, sd_dir, images_max_bytes=30_000))
    with TestClient(app) as client:
        body = {"prompt": "a red circle", "steps": 2, "size": "64x64", "response_format": "url"}
        urls, seed = [], 0
        while (answer := client.post("/v1/images/generations", json={**body, "seed": seed})
               ).status_code == 200:
            urls.append(answer.json()["data"][0]["url"].split("testserver", 1)[1])
            seed += 1
        assert answer.status_code == 507 and urls, answer.text
        error = answer.json()["error"]
        assert error["code"] == "insufficient_storage" and "DELETE /v1/jobs" in error["message"]
        assert all(client.get(url).status_code == 200 for url in urls)  # nothing was dropped
        assert client.post("/v1/jobs", json=body).status_code == 507


def test_a_request_costing_more_than_the_budget_is_refused_up_front(tmp_path, sd_dir):
    from fastapi.testclient import TestClient
    from tests.serving.conftest import make_config

    from huajia.serving.app import create_app
    from huajia.serving.budget import prompt_chunks

    assert prompt_chunks("a BREAK b BREAK c") == 3
    assert prompt_chunks("红" * 100) == 4  # no tokenizer: one token per UTF-8 byte, the bound
    app = create_app(make_config(tmp_path, sd_dir, max_cost=2.0))
    with TestClient(app) as client:
        service = client.app.state.service
        cheap = {"prompt": "a red circle", "steps": 2, "size": "64x64"}
        assert client.post("/v1/jobs", json=cheap).status_code == 202
        assert client.post("/v1/jobs", json={**cheap, "steps": 30}).status_code == 202
        for costly in ({**cheap, "steps": 150, "n": 10},
                       {**cheap, "prompt": "a red circle " * 300, "steps": 30},
                       {**cheap, "steps": 40, "think": True}):
            response = client.post("/v1/jobs", json=costly)
            assert response.status_code == 400, costly
            assert "megapixel-steps" in response.json()["error"]["message"]
        counts = service.queue.counts()  # one snapshot: the worker moves jobs between calls
        assert sum(counts.values()) == 2, counts  # nothing else stored
