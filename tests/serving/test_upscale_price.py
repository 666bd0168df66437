"""The upscaler priced apart in the cost budget (benchmarks/upscale_cost.py's fit)."""

import json
from importlib import resources

import pytest
from fastapi.testclient import TestClient

from huajia.engine.request import GenerationRequest
from huajia.serving.budget import SizePrice
from huajia.serving.jobs import JobSpec


def test_the_shipped_fit_prices_finishing_by_output_pixels():
    fit = json.loads(resources.files("huajia.serving").joinpath("data/upscale_cost.json")
                     .read_text("utf-8"))
    assert fit["k_s_per_mp"] > 0 and len(fit["points_s"]) >= 4
    price = SizePrice.measured()
    small, big = price.upscaling((512, 512), 1), price.upscaling((2048, 2048), 1)
    assert 0 < small < big and price.upscaling((2048, 2048), 10) == pytest.approx(10 * big)
    # in seconds again: what the fit says one 2048² picture costs to finish
    assert big * price.seconds_per_unit() == pytest.approx(
        fit["c_s"] + fit["k_s_per_mp"] * 2048**2 / 1e6)
    assert SizePrice().upscaling((2048, 2048), 10) == 0  # no fit: nothing added


def test_an_upscaled_request_costs_its_finishing_and_is_refused_past_the_budget(tmp_path, sd_dir):
    from tests.serving.conftest import make_config

    from huajia.serving.app import create_app

    with TestClient(create_app(make_config(tmp_path, sd_dir, max_cost=1e9))) as client:
        service = client.app.state.service
        native = service.facts.paint_size(GenerationRequest("a", width=2048, height=2048))[0]

        def cost(side: int) -> float:
            request = GenerationRequest("a red circle", steps=2, n=10, width=side, height=side)
            return service.check_cost(JobSpec(request), service.painted(request))

        # 2048² is painted at the same size as native² (the fixture's smallest): only the
        # finishing differs
        assert service.facts.paint_size(GenerationRequest("a", width=native, height=native)) \
            == (native, native)
        extra = cost(2048) - cost(native)
        assert extra == pytest.approx(service.size_price.upscaling((2048, 2048), 10)
                                      - service.size_price.upscaling((native, native), 10))
        assert extra > 0
        service.config = type(service.config)(**{**service.config.__dict__,
                                                 "max_cost": cost(native) + extra / 2})
        body = {"prompt": "a red circle", "steps": 2, "n": 10}
        assert client.post("/v1/jobs", json={**body, "size": f"{native}x{native}"}).status_code \
            == 202
        refused = client.post("/v1/jobs", json={**body, "size": "2048x2048"})
        assert refused.status_code == 400
        assert "then upscaled to 2048x2048" in refused.json()["error"]["message"]
