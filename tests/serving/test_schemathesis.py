"""schemathesis against the live server's OpenAPI document: no input may cause a 5xx."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from tests.serving.conftest import LiveServer, make_config  # noqa: E402

from huajia.serving.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, sd_dir):
    app = create_app(make_config(tmp_path_factory.mktemp("fuzz"), sd_dir))
    with LiveServer(app) as server:
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    body = case.body if isinstance(case.body, dict) else {}
    caps = (("steps", 2), ("n", 2), ("pauses", 1), ("repaints", 1), ("restarts", 1),
            ("compose_tries", 1))
    for name, cap in caps:  # keep the tiny model quick
        if isinstance(body.get(name), int) and body[name] > cap:
            body[name] = cap
    response = case.call(timeout=120)
    assert response.status_code < 500, f"{case.method} {case.path}: {response.text[:300]}"
