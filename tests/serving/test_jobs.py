"""Jobs are validated once, at submit (``JobSpec``): what a worker could not run is a 400 now,
errors name no server folder, and cache keys are the normalised request plus the LoRA files'
contents and every setting that changes the bytes."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient
from tests.conftest import loud_lora
from tests.serving.conftest import make_config

from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError
from huajia.serving.app import create_app
from huajia.serving.config import ServeConfig
from huajia.serving.jobs import JobSpec, LoraFolder, redact
from huajia.serving.schemas import ImageGenerationBody

BODY = {"prompt": "a red circle", "seed": 7, "steps": 3, "size": "64x64"}


def _spec(folder: LoraFolder | None = None, **body) -> JobSpec:
    return JobSpec.from_body(ImageGenerationBody(**{**BODY, **body}), folder or LoraFolder(None),
                             seed=1)


def _keys(spec: JobSpec, folder=None, settings=None) -> list[str]:
    return spec.image_keys("tiny@abc", folder or LoraFolder(None),
                           settings or ServeConfig().output_settings())


def test_equivalent_requests_share_a_cache_key():
    plain = _keys(_spec())
    # OpenAI's style words are presets with their own guidance: visible, so not the same key
    assert len({*_keys(_spec(style="vivid")), *plain, *_keys(_spec(style="natural"))}) == 3
    assert _keys(_spec(guidance=5.0, negative_prompt="", n=1, quality="low")) == plain
    assert _keys(_spec(cfg=5.0, critic="clip")) == plain  # a critic means nothing unthinking
    assert _keys(_spec(quality="hd", steps=3)) == plain  # given steps win over quality
    no_steps = {k: v for k, v in BODY.items() if k != "steps"}
    auto = JobSpec.from_body(ImageGenerationBody(**no_steps, quality="auto"), LoraFolder(None), 1)
    default = GenerationRequest.__dataclass_fields__["steps"].default
    assert _keys(auto) == _keys(_spec(steps=default))  # 'auto' quality: the default steps
    for change in ({"seed": 8}, {"guidance": 4.0}, {"style": "cartoon"}, {"think": True}):
        assert _keys(_spec(**change)) != plain, change
    assert _keys(_spec(n=2))[0] == plain[0]  # image k of n is image k alone with seed+k


def test_output_settings_are_in_the_key():
    spec = _spec()
    keys = {tuple(_keys(spec, settings=ServeConfig(**kw).output_settings()))
            for kw in ({}, {"nsfw": "off"}, {"nsfw_threshold": 0.3}, {"watermark_key": "x"})}
    assert len(keys) == 4


def test_a_changed_lora_file_changes_the_key(tmp_path, sd_dir):
    folder = tmp_path / "loras"
    folder.mkdir()
    shutil.copy(loud_lora(sd_dir, tmp_path), folder / "loud.safetensors")
    loras = LoraFolder(folder)
    before = _keys(_spec(loras, loras=["loud:0.8"]), loras)
    assert before == _keys(_spec(loras, loras=["loud:0.8"]), loras)
    data = bytearray((folder / "loud.safetensors").read_bytes())
    data[-1] ^= 1  # one bit of one weight
    (folder / "loud.safetensors").write_bytes(bytes(data))
    assert _keys(_spec(loras, loras=["loud:0.8"]), loras) != before


def test_the_payload_round_trips(tmp_path, sd_dir):
    folder = tmp_path / "loras"
    folder.mkdir()
    shutil.copy(loud_lora(sd_dir, tmp_path), folder / "loud.safetensors")
    loras = LoraFolder(folder)
    spec = _spec(loras, loras=["loud:0.5"], think=True, max_repaints=2, critic="shapes")
    again = JobSpec.from_payload(spec.to_payload(), loras)
    assert again == spec and again.think.max_repaints == 2
    assert "loud" in str(spec.to_payload()) and str(folder) not in str(spec.to_payload())


@pytest.fixture
def server(tmp_path, sd_dir):
    folder = tmp_path / "loras"
    folder.mkdir()
    (folder / "broken.safetensors").write_bytes(b"not a safetensors file")
    app = create_app(make_config(tmp_path, sd_dir, lora_dir=folder))
    with TestClient(app) as client:
        yield client, folder


def test_what_a_worker_could_not_run_is_refused_at_submit(server):
    client, folder = server
    service = client.app.state.service
    cases = [({"think": True, "critic": "clip"}, "no clip critic"),
             ({"think": True, "critic": "vlm"}, "--vlm-url"),
             ({"scheduler": "dpm_fast"}, "scheduler"),
             ({"loras": ["broken"]}, "not a safetensors file"),
             ({"loras": ["x" * 300]}, "unknown LoRA"),
             ({"loras": ["../x"]}, "inside the server's LoRA folder")]
    for patch, needle in cases:
        response = client.post("/v1/jobs", json={**BODY, **patch})
        assert response.status_code == 400, (patch, response.text)
        message = response.json()["error"]["message"]
        assert needle in message and str(folder) not in message, (patch, message)
    assert service.queue.counts() == {}  # nothing was queued


def test_the_lora_folder_takes_checkpoints_and_folders_as_the_engine_does(server, sd_dir,
                                                                          tmp_path):
    import torch
    from safetensors.torch import load_file
    from tests.conftest import loud_lora

    client, folder = server
    weights = load_file(loud_lora(sd_dir, tmp_path))
    torch.save(weights, folder / "pickled.ckpt")  # e.g. DiffSynth-Studio's trainer writes .ckpt
    (folder / "diffusers-folder").mkdir()
    (folder / "diffusers-folder" / "pytorch_lora_weights.safetensors").write_bytes(
        (tmp_path / "pytorch_lora_weights.safetensors").read_bytes())
    assert {"pickled", "diffusers-folder", "broken"} <= set(client.app.state.service.loras.names())
    for name in ("pickled:0.8", "diffusers-folder"):
        response = client.post("/v1/images/generations", json={**BODY, "loras": [name]})
        assert response.status_code == 200, (name, response.text)


def test_a_nan_picture_is_an_openai_error_not_a_black_image(server, sd_dir, tmp_path):
    from safetensors.torch import load_file, save_file
    from tests.conftest import loud_lora

    client, folder = server
    weights = load_file(loud_lora(sd_dir, tmp_path))
    save_file({k: v * float("inf") for k, v in weights.items()}, folder / "inf.safetensors")
    response = client.post("/v1/images/generations", json={**BODY, "loras": ["inf"]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "generation_failed" and "NaN" in error["message"]
    assert "at step 1 of" in error["message"] and "LoRAs less weight" in error["message"]
    assert str(folder) not in error["message"]
    assert client.post("/v1/images/generations", json=BODY).status_code == 200  # still serving


def test_a_server_with_a_vlm_accepts_the_vlm_critic(tmp_path, sd_dir):
    config = make_config(tmp_path, sd_dir, vlm_url="http://127.0.0.1:9/v1", vlm_model="m")
    app = create_app(config)
    with TestClient(app) as client:
        spec = client.app.state.service.prepare(ImageGenerationBody(**BODY, think=True,
                                                                     critic="vlm"))
        assert spec.critic == "vlm" and client.app.state.service.critics.available() == [
            "shapes", "vlm"]
    with pytest.raises(HuajiaError, match="both --vlm-url and --vlm-model"):
        make_config(tmp_path, sd_dir, vlm_url="http://127.0.0.1:9/v1")


def test_errors_name_no_server_paths():
    message = "cannot load LoRA '/srv/huajia/loras/x.safetensors': bad header in /data/a/b.bin"
    assert redact(message) == "cannot load LoRA 'x.safetensors': bad header in b.bin"
    assert redact("see http://localhost:8000/v1") == "see http://localhost:8000/v1"
