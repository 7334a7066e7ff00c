"""Every route in the route table is served, documented in the OpenAPI spec, counted in the metrics and
known to the guard: one entry, and all of them follow."""

from __future__ import annotations

import re
import secrets

import httpx
import pytest
from conftest import example_photos
from support.checks import b64
from support.server import start_server

from nailseg.api.guard.validation import Validation
from nailseg.api.routes import MODEL, ROUTES, PathSet, endpoint_label, route_of

ADMIN_KEY = secrets.token_hex(16)
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}  # admin keys are API keys too: it opens every route


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Every route served: the debug endpoints too, which need an admin key (and so keys)."""
    yield from start_server(tmp_path_factory, UNET_DEVELOPMENT_ENABLE_DEBUG_ENDPOINTS="true",
                            UNET_SECURITY_ADMIN_KEYS=ADMIN_KEY)


def _concrete(path: str, version: str) -> str:
    return path.replace("{version}", version)


def test_each_route_is_found_by_its_own_path_and_label():
    for route in ROUTES.values():
        assert route_of(_concrete(route.path, "v1")) is route
        assert endpoint_label(_concrete(route.path, "v1")) == route.name
    assert route_of("/v2/models/another/infer") is None and route_of("/api/unet/nope") is None
    assert "/api/unet/segment" in PathSet(lambda r: r.images) and "/api/unet/health" not in PathSet(lambda r: r.images)
    assert f"/v2/models/{MODEL}/versions/7/infer" in PathSet(lambda r: r.infer)


@pytest.mark.e2e
def test_every_route_is_in_the_spec_served_and_counted(server):
    spec = server.get("/docs.json", headers=ADMIN).json()
    version = server.get("/api/unet/model-info", headers=ADMIN).json()["model_tag"].split(":")[1]
    photo = example_photos()[0][0].read_bytes()
    bodies = {"segment": {"image_data": b64(example_photos()[0][0])},
              "segment-batch": {"images": [{"image_data": b64(example_photos()[0][0])}]},
              "initialize": {"warm_up": False}, "tryon": {"color": "#C8143C"},
              "v2-infer": {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 2, 2, 3], "data": [0] * 12}]}}
    for route in ROUTES.values():
        assert route.method.lower() in spec["paths"][route.path], route.name
        url = server.url + _concrete(route.path, version)
        if route.method == "GET":
            resp = httpx.get(url, headers=ADMIN, timeout=60)
        elif route.form is not None:
            resp = httpx.post(url, files={"image": ("p.jpg", photo, "image/jpeg")}, data=bodies.get(route.name),
                              headers=ADMIN, timeout=120)
        else:
            body = bodies.get(route.name, bodies.get(route.name.replace("-model-version", "")))
            resp = httpx.post(url, json=body, headers=ADMIN, timeout=120)
        assert resp.status_code == 200, (route.name, resp.status_code, resp.text[:200])
    metrics = server.get("/metrics").text  # open
    counted = set(re.findall(r'unet_requests_total\{code="OK",endpoint="([^"]+)"\}', metrics))
    assert set(ROUTES) <= counted


def test_the_guard_takes_its_bodies_from_the_table():
    validated = {r.path: r.body for r in ROUTES.values() if r.body is not None}
    forms = {r.path: r.form for r in ROUTES.values() if r.form is not None}
    layer = Validation(None, refusals=None, max_body_bytes=1, validated=validated, forms=forms,
                       infer=PathSet(lambda r: r.infer), parse_infer=lambda body, scope: None)
    for route in ROUTES.values():
        if route.method == "POST":
            known = route.path in layer.validated or route.path in layer.forms or route.path in layer.infer
            assert known, route.name  # every POST body is checked before a handler sees it


@pytest.mark.e2e
def test_the_spec_is_valid_openapi_3_1(server):
    """pydantic writes JSON Schema 2020-12 (prefixItems, null in anyOf): valid in OpenAPI 3.1, not in 3.0."""
    from openapi_spec_validator import OpenAPIV31SpecValidator

    spec = server.get("/docs.json", headers=ADMIN).json()
    assert spec["openapi"] == "3.1.0"
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
              for e in OpenAPIV31SpecValidator(spec).iter_errors()]
    assert not errors, "\n".join(errors[:10])
