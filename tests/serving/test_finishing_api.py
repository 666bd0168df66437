"""Finishing over HTTP: revised_prompt for expanded prompts, hires fix and sharpen fields,
/v1/images/edits and /v1/images/variations (OpenAI's multipart forms, the openai SDK)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tests.serving.conftest import LiveServer, make_config

from huajia.engine.infotext import parse_infotext
from huajia.serving.app import create_app
from huajia.serving.provenance import embed_watermark


@pytest.fixture(scope="module")
def client(tmp_path_factory, sd_dir):
    app = create_app(make_config(tmp_path_factory.mktemp("finish"), sd_dir))
    with TestClient(app) as test_client:
        yield test_client


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _picture(data: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data["b64_json"])))


def _mask(size=64) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (size // 2, 0, size, size))
    return mask


def test_revised_prompt_is_the_painted_prompt(client):
    body = {"prompt": "a {red|blue} circle", "n": 3, "size": "64x64", "steps": 2, "seed": 5,
            "expand": "wildcards", "style_raw": "{prompt}, flat"}
    first = client.post("/v1/images/generations", json=body)
    assert first.status_code == 200, first.text
    revised = [d["revised_prompt"] for d in first.json()["data"]]
    assert all(p in ("a red circle, flat", "a blue circle, flat") for p in revised)
    info = parse_infotext(_picture(first.json()["data"][0]).info["parameters"])
    assert info["Template"] == "a {red|blue} circle" and info["Prompt"] == revised[0]
    again = client.post("/v1/images/generations", json=body)  # a cache hit says the same
    assert [d["revised_prompt"] for d in again.json()["data"]] == revised


def test_hires_and_sharpen_fields(client):
    body = {"prompt": "a red circle", "size": "64x64", "steps": 2, "seed": 1, "hires_scale": 2,
            "hires_steps": 2, "sharpen": 0.5}
    answer = client.post("/v1/images/generations", json=body)
    assert answer.status_code == 200, answer.text
    picture = _picture(answer.json()["data"][0])
    info = parse_infotext(picture.info["parameters"])
    assert picture.size == (128, 128) and info["Hires upscale"] == "2" and info["Sharpen"] == "0.5"


@pytest.mark.parametrize("patch, words", [
    ({"hires_scale": 9}, "hires_scale"),
    ({"hires_upscaler": "/etc/passwd"}, "upscaler files are for the CLI"),
    ({"expand": "llm"}, "needs a chat endpoint"),
    ({"prompt": "a __nope__ circle", "expand": "wildcards"}, "has no file nope.txt"),
    ({"style_raw": "no placeholder"}, "{prompt}"),
])
def test_bad_finishing_fields_are_openai_shaped_400s(client, patch, words):
    answer = client.post("/v1/images/generations", json={"prompt": "a red circle", **patch})
    assert answer.status_code == 400 and words in answer.json()["error"]["message"], answer.text
    assert "/work" not in answer.text


def test_edit_repaints_only_the_masked_area(client):
    picture = _picture(client.post("/v1/images/generations", json={
        "prompt": "a red circle", "size": "64x64", "steps": 2, "seed": 2}).json()["data"][0]).convert("RGB")
    answer = client.post("/v1/images/edits", files={
        "image": ("in.png", _png(picture), "image/png"), "mask": ("m.png", _png(_mask()), "image/png")},
        data={"prompt": "a blue square", "n": "2", "steps": "2", "seed": "3"})
    assert answer.status_code == 200, answer.text
    inside = np.asarray(_mask()) > 0
    key = client.app.state.service.watermark_key
    kept = np.asarray(embed_watermark(picture, key), np.int16)  # outside: the input plus our mark
    for item in answer.json()["data"]:
        edited = np.asarray(_picture(item).convert("RGB"), np.int16)
        diff = np.abs(edited - kept)
        assert diff[~inside].max() == 0 and diff[inside].mean() > 1
        assert item["revised_prompt"] == "a blue square"
    variation = client.post("/v1/images/variations", files={"image": ("in.png", _png(picture), "image/png")},
                            data={"n": "2", "steps": "2"})
    assert variation.status_code == 200, variation.text
    assert len(variation.json()["data"]) == 2


@pytest.mark.parametrize("files, data, words", [
    ({"image": ("in.png", b"not a picture", "image/png")}, {"prompt": "x"}, "not a readable picture"),
    ({"image": "in64", "mask": ("m.png", "mask32", "image/png")}, {"prompt": "x"},
     "the mask is 32x32 but the picture is 64x64"),
    ({"image": "in64"}, {"prompt": "x"}, "no mask"),
    ({"image": "in64", "mask": "mask64"}, {"prompt": "x", "strength": "0"}, "strength"),
    ({"image": "in64", "mask": "mask64"}, {"prompt": "x", "colour": "red"}, "colour"),
    ({}, {"prompt": "x"}, "no 'image' file"),
    ({"image": "in64", "mask": "mask64"}, {"prompt": "x", "n": "10", "steps": "150",
                                           "size": "2048x2048"}, "would cost"),
])
def test_bad_edits_are_openai_shaped_400s(client, files, data, words):
    named = {"in64": _png(Image.new("RGB", (64, 64), "white")), "mask32": _png(Image.new("L", (32, 32), 255)),
             "mask64": _png(_mask())}
    form = {}
    for field, value in files.items():
        if isinstance(value, str):
            value = (f"{value}.png", named[value], "image/png")
        elif isinstance(value[1], str):
            value = (value[0], named[value[1]], value[2])
        form[field] = value
    answer = client.post("/v1/images/edits", files=form or {"other": ("x.txt", b"x", "text/plain")},
                         data=data)
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["error"]["message"], answer.text
    not_multipart = client.post("/v1/images/edits", json={"prompt": "x"})
    assert not_multipart.status_code == 400 and "multipart" in not_multipart.json()["error"]["message"]


def test_openai_sdk_edits_and_variations(tmp_path, sd_dir):
    openai = pytest.importorskip("openai")
    app = create_app(make_config(tmp_path, sd_dir))
    picture = Image.new("RGB", (64, 64), "white")
    with LiveServer(app) as server:
        sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
        edited = sdk.images.edit(image=("in.png", _png(picture), "image/png"),
                                 mask=("m.png", _png(_mask()), "image/png"), prompt="a red circle",
                                 n=1, extra_body={"steps": 2})
        kept = np.asarray(embed_watermark(picture, app.state.service.watermark_key), np.int16)
        diff = np.abs(np.asarray(_picture(edited.data[0].model_dump()).convert("RGB"), np.int16) - kept)
        assert diff[~(np.asarray(_mask()) > 0)].max() == 0
        varied = sdk.images.create_variation(image=("in.png", _png(picture), "image/png"), n=1,
                                             extra_body={"steps": 2})
        assert len(varied.data) == 1
        with pytest.raises(openai.BadRequestError, match="mask"):
            sdk.images.edit(image=("in.png", _png(picture), "image/png"),
                            mask=("m.png", _png(Image.new("L", (32, 32), 255)), "image/png"),
                            prompt="a red circle")


def test_a_variation_describes_more_shapes_than_the_words_count():
    from huajia.serving.edits import describe_picture
    from huajia.world import sampler
    from huajia.world.render import render
    from huajia.world.spec import ObjectGroup, SceneSpec

    crowd = SceneSpec((ObjectGroup("circle", 6, "red", "solid", "small"),), (), "white")
    text = describe_picture(render(sampler.layout(crowd, np.random.default_rng(0)), 128))
    assert "red circles" in text and "six" not in text  # said as a plural: 'two or more'
