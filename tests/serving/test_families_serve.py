"""`huajia serve --model FOLDER` for every model family (tests/family_fixtures): the server
warms the model up as it starts, paints `POST /v1/images/generations` (a PNG whose infotext
names the sampler), describes the model at `GET /v1/models`, refuses a size the family cannot
paint before queueing it, and counts a long prompt's cost in the family's own chunks."""

from __future__ import annotations

import base64
import io
import math
import re

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tests.family_fixtures import FAMILIES
from tests.serving.conftest import make_config

from huajia.engine.infotext import parse_infotext
from huajia.serving.app import create_app

FAMILY_OF = {"sd15": "sd"}  # fixture name → family name, where they differ
BODY = {"prompt": "a red circle left of a blue square", "seed": 3, "steps": 2, "size": "64x64",
        "scheduler": "euler"}
LONG = "a red circle left of a blue square, " * 40


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_is_served(family_dirs, tmp_path, monkeypatch, name):
    app = create_app(make_config(tmp_path, family_dirs[name]))
    with TestClient(app) as client:  # starting it loads the model and warms it up
        service = app.state.service
        family = FAMILY_OF.get(name, name)
        response = client.post("/v1/images/generations", json=BODY)
        assert response.status_code == 200, response.text
        image = Image.open(io.BytesIO(base64.b64decode(response.json()["data"][0]["b64_json"])))
        assert image.format == "PNG" and image.size == (64, 64)
        fields = parse_infotext(image.info["parameters"])
        assert fields["Sampler"] == "Euler" and fields["Seed"] == "3", fields

        model = client.get(f"/v1/models/{service.model_id}").json()
        assert {model["id"], model["object"], model["owned_by"]} == \
            {service.model_id, "model", "huajia"}
        details = model["huajia"]
        assert details["family"] == family and "euler" in details["samplers"]
        assert details["native_size"] > 0 and details["prediction"] in \
            ("epsilon", "v_prediction", "flow")
        assert all(m["huajia"]["family"] == family  # the aliases (dall-e-3, …) are the model
                   for m in client.get("/v1/models").json()["data"])
        # cache keys name the family and how the model runs (dtype, quantization, …)
        identity = service.model_identity
        assert identity.split(";")[0].endswith(f"/{family}") and ";dtype=" in identity

        step = details["size_multiple"]
        if step > 8:  # refused at submit in the engine's words, not as a failed job (upscaler
            # none: painted at the asked size, not at the native one and upscaled)
            refused = client.post("/v1/images/generations",
                                  json={**BODY, "size": "72x64", "upscaler": "none"})
            assert refused.status_code == 400
            assert f"multiples of {step}" in refused.json()["error"]["message"]

        # the cost of a long prompt, in the chunks this family encodes (a budget of 0 makes
        # every request name its cost)
        monkeypatch.setattr(service, "config", service.config.__class__(
            **{**service.config.__dict__, "max_cost": 0.0}))
        costly = client.post("/v1/images/generations", json={**BODY, "prompt": LONG})
        assert costly.status_code == 400, costly.text
        chunks = int(re.search(r"× (\d+) prompt chunk", costly.json()["error"]["message"])[1])
        window = details["prompt_window"]
        if window is None:  # one fixed length, whatever the tokenizer's model_max_length says
            assert chunks == 1, name
        else:  # the family's window (CLIP 75, ChatGLM 256, T5 256-512), not always CLIP's
            tokens = len(service.facts.tokenizer(LONG).input_ids)
            assert chunks == math.ceil(tokens / window), (name, chunks, tokens, window)
        if name == "sd15":
            assert chunks > 1
