"""The GET endpoints' app in-process (nailseg/api/endpoints.py's get_app) around a fake runner."""

from __future__ import annotations

import bentoml
from starlette.testclient import TestClient
from support.fakes import MODEL_TAG, FakeRunner, deps

from nailseg.api import endpoints
from nailseg.api.openapi import project_version


def test_version_answers_the_package_bentoml_and_the_model_tag():
    with TestClient(endpoints.get_app(deps())) as client:
        resp = client.get("/version", headers={"x-request-id": "r-1"})
    body = resp.json()
    assert resp.status_code == 200
    assert (body["version"], body["bentoml_version"], body["model_tag"]) == (project_version(), bentoml.__version__,
                                                                            MODEL_TAG)
    assert body["request_id"] == "r-1" and body["model_info"]["model_variant"] == "fake"


def test_version_without_a_model_is_a_503_in_the_error_shape():
    with TestClient(endpoints.get_app(deps(FakeRunner(model_loaded=False)))) as client:
        resp = client.get("/version")
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "MODEL_NOT_READY"


def test_health_and_model_info_read_the_runner():
    with TestClient(endpoints.get_app(deps())) as client:
        health, info = client.get("/health"), client.get("/model-info")
    assert health.status_code == 200 and health.json()["service_healthy"] is True
    assert info.status_code == 200 and info.json()["model_tag"] == MODEL_TAG
    assert info.json()["input_shape"] == [1, 3, 32, 32]


def test_the_debug_endpoints_are_routes_only_when_on():
    with TestClient(endpoints.get_app(deps())) as client:
        assert client.get("/debug/config").status_code == 404
    with TestClient(endpoints.get_app(deps(), debug_endpoints=True)) as client:
        assert client.get("/debug/config").json()["settings"]["api"]["workers"] == 1
