"""Delete means gone, retention, per-tenant results and quotas, prompts kept out of logs."""

from __future__ import annotations

import logging
import time

from fastapi.testclient import TestClient
from tests.serving.conftest import make_config, wait_for

from huajia.serving.app import create_app

BODY = {"prompt": "a red circle left of a blue square", "seed": 5, "steps": 2, "size": "64x64"}
A, B = {"Authorization": "Bearer sk-a"}, {"Authorization": "Bearer sk-b"}


def _finished(client, headers=None, **patch) -> str:
    job_id = client.post("/v1/jobs", json={**BODY, **patch}, headers=headers).json()["id"]
    wait_for(lambda: client.get(f"/v1/jobs/{job_id}", headers=headers).json()["status"] == "done",
             "the job to finish")
    return job_id


def test_delete_removes_the_job_its_pictures_cache_entries_and_urls(tmp_path, sd_dir):
    config = make_config(tmp_path, sd_dir)
    with TestClient(create_app(config)) as client:
        service = client.app.state.service
        job_id = _finished(client)
        result = client.get(f"/v1/jobs/{job_id}/result?response_format=url").json()
        url = result["data"][0]["url"].split("testserver", 1)[1]
        assert client.get(url).status_code == 200
        key = url.split("/files/")[1].split(".png")[0]
        assert service.cache.get(key) is not None
        deleted = client.delete(f"/v1/jobs/{job_id}")
        assert deleted.status_code == 200 and deleted.json()["deleted"] is True
        for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/result", url):
            assert client.get(path).status_code == 404, path
        assert service.cache.get(key) is None and service.images.get(key) is None
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 404
    with TestClient(create_app(config)) as client:  # after a restart: still gone
        assert client.get(url).status_code == 404
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404
        assert not list((config.data_dir / "images").rglob(f"{key}*"))


def test_a_queued_job_deleted_is_never_painted(tmp_path, sd_dir):
    with TestClient(create_app(make_config(tmp_path, sd_dir, batch_wait_s=30))) as client:
        service = client.app.state.service
        job_id = client.post("/v1/jobs", json=BODY).json()["id"]
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
        assert service.queue.get(job_id) is None and service.images.size() == 0


def test_tenants_have_their_own_cache_entries_and_files(tmp_path, sd_dir):
    config = make_config(tmp_path, sd_dir, api_keys=("sk-a", "sk-b"))
    with TestClient(create_app(config)) as client:
        service = client.app.state.service
        first = client.post("/v1/images/generations", json={**BODY, "response_format": "url"},
                            headers=A).json()
        batches = len(service.batches)
        client.post("/v1/images/generations", json=BODY, headers=B)
        assert len(service.batches) == batches + 1  # painted again, not B served A's entry
        client.post("/v1/images/generations", json=BODY, headers=A)
        assert len(service.batches) == batches + 1  # A's own repeat is a hit
        path = first["data"][0]["url"].split("testserver", 1)[1].split("?")[0]
        assert client.get(path, headers=A).status_code == 200
        assert client.get(path, headers=B).status_code == 404
    shared = make_config(tmp_path / "shared", sd_dir, api_keys=("sk-a", "sk-b"), shared_cache=True)
    with TestClient(create_app(shared)) as client:
        service = client.app.state.service
        client.post("/v1/images/generations", json=BODY, headers=A)
        batches = len(service.batches)
        client.post("/v1/images/generations", json=BODY, headers=B)
        assert len(service.batches) == batches  # --shared-cache: one entry for everyone


def test_a_tenant_past_its_quota_gets_a_507(tmp_path, sd_dir):
    config = make_config(tmp_path, sd_dir, api_keys=("sk-a", "sk-b"), tenant_quota_bytes=1)
    with TestClient(create_app(config)) as client:
        assert client.post("/v1/images/generations", json=BODY, headers=A).status_code == 200
        refused = client.post("/v1/jobs", json={**BODY, "seed": 6}, headers=A)
        assert refused.status_code == 507 and "quota" in refused.json()["error"]["message"]
        assert client.post("/v1/images/generations", json=BODY, headers=B).status_code == 200


def test_retention_deletes_old_jobs_and_pictures(tmp_path, sd_dir):
    with TestClient(create_app(make_config(tmp_path, sd_dir, retain_days=1))) as client:
        service = client.app.state.service
        old = _finished(client)
        assert service.results.sweep(now=time.time() + 3600) == 0  # not a day old yet
        assert service.results.sweep(now=time.time() + 2 * 86400) == 1
        assert client.get(f"/v1/jobs/{old}").status_code == 404
        assert service.images.size() == 0 and service.cache.size() == 0
    with TestClient(create_app(make_config(tmp_path / "mb", sd_dir, retain_bytes=1))) as client:
        service = client.app.state.service
        jobs = [_finished(client, seed=s) for s in (1, 2)]
        service.results.sweep()
        assert all(client.get(f"/v1/jobs/{j}").status_code == 404 for j in jobs)
        assert service.images.size() == 0


def test_prompts_reach_the_log_only_with_log_prompts(tmp_path, sd_dir, caplog):
    marker = "a red circle left of a blue square zanzibar"
    for log_prompts in (False, True):
        caplog.clear()
        config = make_config(tmp_path / str(log_prompts), sd_dir, log_prompts=log_prompts)
        with caplog.at_level(logging.DEBUG), TestClient(create_app(config)) as client:
            client.post("/v1/images/generations", json={**BODY, "prompt": marker})
            client.post("/v1/images/generations", json={**BODY, "prompt": "(broken:1.2"})
        assert (marker in caplog.text) is log_prompts


def test_a_synchronous_result_is_deleted_by_its_file(tmp_path, sd_dir):
    with TestClient(create_app(make_config(tmp_path, sd_dir))) as client:
        service = client.app.state.service
        answer = client.post("/v1/images/generations", json={**BODY, "response_format": "url"})
        url = answer.json()["data"][0]["url"].split("testserver", 1)[1]
        assert sum(service.queue.counts().values()) == 1  # its job holds the prompt
        assert client.delete(url).status_code == 200
        assert client.get(url).status_code == 404
        assert sum(service.queue.counts().values()) == 0 and service.cache.size() == 0


def test_the_retention_sweep_runs_on_a_schedule_only_when_asked(tmp_path):
    from huajia.serving.cache import ResultCache
    from huajia.serving.config import ServeConfig
    from huajia.serving.queue import JobQueue
    from huajia.serving.retention import SWEEP_EVERY_S, StoredResults

    def results(**settings) -> StoredResults:
        config = ServeConfig(data_dir=tmp_path, **settings)
        return StoredResults(JobQueue(tmp_path / "q.sqlite"), ResultCache(tmp_path / "i"),
                             ResultCache(tmp_path / "c"), config)

    assert not results().due()  # keep until deleted: no sweep at all
    timed = results(retain_days=1)
    assert timed.due(now=1000.0)
    timed.sweep(now=1000.0)
    assert not timed.due(now=1000.0 + SWEEP_EVERY_S / 2) and timed.due(now=1000.0 + SWEEP_EVERY_S)
