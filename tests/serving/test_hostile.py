"""Hostile but legal clients (issue 46): long names, echoed values, smuggling headers, booleans
as numbers, bad LoRA scales and style_raw weights: every one a 4xx before anything is queued."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from tests.serving.conftest import make_config

from huajia.serving.app import create_app

BODY = {"prompt": "a red circle left of a blue square", "seed": 7, "steps": 2, "size": "64x64"}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, sd_dir):
    tmp_path = tmp_path_factory.mktemp("hostile")
    folder = tmp_path / "loras"
    folder.mkdir()
    app = create_app(make_config(tmp_path, sd_dir, lora_dir=folder))
    with TestClient(app) as client:
        yield client


def _refused(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]


def test_a_4100_character_file_name_is_a_404(hostile):
    error = _refused(hostile.get("/v1/images/files/" + "a" * 4100 + ".png"), 404)
    assert len(error["message"]) < 200
    _refused(hostile.get("/v1/images/files/" + "a" * 64 + ".png"), 404)


def test_long_values_are_not_echoed_back(hostile):
    for response in (hostile.post("/v1/images/generations", json={**BODY, "model": "m" * 100_000}),
                     hostile.get("/v1/jobs/" + "j" * 60_000),
                     hostile.post("/v1/images/generations", json={**BODY, "k" * 100_000: 1})):
        assert response.status_code in (400, 404), response.text
        assert len(response.content) < 1500, len(response.content)
