"""The app on Ray Serve (one shared local Ray): the openai SDK gets pictures, errors keep
OpenAI's shape, and a model replica killed mid-job costs a re-run, never a lost or doubled job."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.conftest import JsonEndpoint
from tests.serving.conftest import free_port, make_config, wait_for

from huajia.errors import HuajiaError
from huajia.serving.app import create_app
from huajia.serving.queue import JobQueue

BAD = {"prompt": "a red circle", "n": 99}


class HeldChat:
    """A chat model for expand 'llm' whose first answer waits until ``release``: while it
    waits, a model replica is inside a job (expanding its prompt), so the test knows when a
    kill lands mid-job, however fast the machine paints."""

    def __init__(self):
        self.asked, self.release = threading.Event(), threading.Event()
        held = self

        class Handler(JsonEndpoint):
            def do_POST(self):  # noqa: N802
                body = self.body()
                if not held.asked.is_set():
                    held.asked.set()
                    held.release.wait(timeout=300)
                self.chat(body["messages"][-1]["content"])  # (a killed replica gets nothing)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()


@pytest.fixture(scope="module")
def chat():
    held = HeldChat()
    yield held
    held.close()


@pytest.fixture(scope="module")
def ray_server(ray_cluster, tmp_path_factory, sd_dir, chat):
    from ray import serve

    from huajia.serving.ray import RaySettings, serve_on_ray

    port = free_port()
    config = make_config(tmp_path_factory.mktemp("ray-serve"), sd_dir, max_cost=1000,
                         llm_url=chat.url, llm_model="held")
    settings = RaySettings.from_dict({"model": {"num_replicas": 1,
                                                "ray_actor_options": {"num_cpus": 1}},
                                      "in_flight": 4})
    serve_on_ray(config, settings, "local", "127.0.0.1", port, name="huajia-test")
    yield f"http://127.0.0.1:{port}", config
    serve.shutdown()


def test_the_openai_sdk_gets_pictures_and_errors_keep_their_shape(ray_server, tmp_path, sd_dir):
    openai = pytest.importorskip("openai")
    url, _ = ray_server
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
    result = sdk.images.generate(prompt="two red circles", n=2, extra_body={"steps": 3})
    assert len(result.data) == 2 and result.data[0].b64_json
    again = sdk.images.generate(prompt="two red circles", n=2, extra_body={"steps": 3,
                                                                           "seed": 7})
    cached = sdk.images.generate(prompt="two red circles", n=2, extra_body={"steps": 3,
                                                                            "seed": 7})
    assert [d.b64_json for d in again.data] == [d.b64_json for d in cached.data]
    listed = httpx.get(f"{url}/v1/models", timeout=30).json()["data"]
    assert listed[0]["huajia"]["family"] == "sd"  # a replica's facts, through the ingress
    assert [m.id for m in sdk.models.list()] == [m["id"] for m in listed]
    with pytest.raises(openai.BadRequestError):
        sdk.images.generate(prompt="a red circle", n=99)
    over_ray = httpx.post(f"{url}/v1/images/generations", json=BAD, timeout=30)
    with TestClient(create_app(make_config(tmp_path, sd_dir))) as client:
        here = client.post("/v1/images/generations", json=BAD)
    assert over_ray.status_code == here.status_code == 400
    assert over_ray.json() == here.json() and set(here.json()["error"]) >= {"message", "type"}


def test_a_replica_killed_mid_job_costs_a_rerun_and_the_job_completes_once(ray_server,
                                                                           ray_cluster, chat):
    ray = ray_cluster
    url, config = ray_server
    job = httpx.post(f"{url}/v1/jobs", json={"prompt": "a blue square", "steps": 3, "n": 4,
                                             "seed": 3, "expand": "llm"}, timeout=30).json()
    queue = JobQueue(config.data_dir / "jobs.sqlite")
    # the replica asks the chat model for the first picture's prompt and waits for its answer
    assert chat.asked.wait(timeout=120), "the job never reached a model replica"
    assert queue.get(job["id"]).state == "running"
    replica = next(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                   if "#Model#" in a["name"])
    ray.kill(ray.get_actor(replica, namespace="serve"), no_restart=True)
    chat.release.set()  # the killed replica is not there to read the answer
    wait_for(lambda: queue.get(job["id"]).state in ("done", "failed"), "the job to end", 300)
    final = queue.get(job["id"])
    assert final.state == "done", final.error
    assert final.attempts == 2 and queue.completions(job["id"]) == 1
    result = httpx.get(f"{url}/v1/jobs/{job['id']}/result", timeout=30).json()
    assert len(result["data"]) == 4


def test_ray_settings_fill_defaults_and_errors_are_one_line(tmp_path):
    from huajia.serving.ray import RaySettings, build_app

    scaled = RaySettings.from_dict({"model": {"autoscaling_config": {"max_replicas": 3}}}).model
    assert "num_replicas" not in scaled and scaled["max_ongoing_requests"] == 16
    assert RaySettings.from_dict({"threads": 2}).replica_threads() == 2

    with pytest.raises(HuajiaError, match="unknown Ray setting 'replicas'"):
        RaySettings.from_dict({"replicas": 2})
    with pytest.raises(HuajiaError, match="unknown model deployment option 'min_replicas'"):
        RaySettings.from_dict({"model": {"min_replicas": 1}})
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(HuajiaError, match="not valid YAML"):
        RaySettings.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(HuajiaError, match="unknown server setting 'datadir'"):
        build_app({"datadir": "x"})


def test_the_config_files_in_docs_validate_and_build():
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from huajia.serving.ray import INGRESS, MODEL, RaySettings, build_app

    docs = Path(__file__).parents[2] / "docs" / "ray"
    settings = RaySettings.from_yaml(docs / "ray-config.yaml")
    assert settings.model["autoscaling_config"]["max_replicas"] == 2
    serve_config = yaml.safe_load((docs / "serve-config.yaml").read_text())
    ServeDeploySchema.parse_obj(serve_config)  # Ray Serve's own check of `serve deploy` files
    kuberay = yaml.safe_load((docs / "rayservice.yaml").read_text())
    assert kuberay["kind"] == "RayService"
    assert yaml.safe_load(kuberay["spec"]["serveConfigV2"]) == serve_config
    application = serve_config["applications"][0]
    assert {d["name"] for d in application["deployments"]} == {MODEL, INGRESS}
    assert application["import_path"] == "huajia.serving.ray:build_app"
    build_app(application["args"])
