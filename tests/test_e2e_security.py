"""End to end with keys, CORS, a rate limit and an inflight-image cap switched on (by UNET_* variables),
on a real `bentoml serve .` (the same server code as test_e2e_service.py's `server`)."""

from __future__ import annotations

import pytest

import concurrent.futures
import secrets

import bentoml
import httpx
import numpy as np
from conftest import example_photos
from PIL import Image
from support.checks import assert_error, b64, png_array
from support.keys import (
    ADMIN_KEY,
    BURST,
    FILE_KEY,
    KEYS,
    OPEN_PATHS,
    ORIGIN,
    RATE,
    bearer,
    fresh_key,
)
from support.server import MAX_BODY_MB

pytestmark = pytest.mark.e2e

def photo() -> str:
    return b64(example_photos()[0][0])


def test_segment_needs_a_valid_key(keyed):
    for headers in ({}, bearer(secrets.token_hex(16)), {"X-API-Key": KEYS[0][:-1]}):
        resp = keyed.post("/api/unet/segment", {"image_data": photo()}, headers=headers)
        assert_error(resp, 401, "UNAUTHORIZED")
        assert resp.headers["www-authenticate"].startswith("Bearer")
    resp = keyed.post("/api/unet/segment", {"image_data": photo()}, headers={"X-API-Key": fresh_key()})
    assert resp.status_code == 200
    assert png_array(resp.json()["mask_data"]).shape == Image.open(example_photos()[0][0]).size[::-1]
    resp = keyed.post("/api/unet/segment", {"image_data": photo()}, headers=bearer(FILE_KEY))  # from the key file
    assert resp.status_code == 200 and np.any(png_array(resp.json()["mask_data"]))


def test_bentoml_client_sends_its_token_as_a_bearer_key(keyed):
    with bentoml.SyncHTTPClient(keyed.url, token=fresh_key()) as client:
        result = client.segment(image_data=photo())
    result = result if isinstance(result, dict) else result.model_dump()
    assert result["success"] is True and np.any(png_array(result["mask_data"]))


def test_probes_and_metrics_stay_open_and_the_rest_is_closed(keyed):
    for path in OPEN_PATHS:
        assert keyed.get(path).status_code == 200, path
    for path in ("/api/unet/model-info", "/docs.json"):
        assert_error(keyed.get(path), 401, "UNAUTHORIZED")


def test_initialize_needs_an_admin_key(keyed):
    assert_error(keyed.post("/api/unet/initialize", {}), 401, "UNAUTHORIZED")
    assert_error(keyed.post("/api/unet/initialize", {}, headers=bearer(fresh_key())), 403, "FORBIDDEN")
    resp = keyed.post("/api/unet/initialize", {"force_reload": False}, headers=bearer(ADMIN_KEY))
    assert resp.status_code == 200 and resp.json()["success"]


def test_keys_never_reach_the_log(keyed):
    keyed.post("/api/unet/segment", {"image_data": "!!"}, headers=bearer(fresh_key()))
    text = keyed.log.read_text()
    assert not any(k in text for k in (*KEYS, ADMIN_KEY, FILE_KEY))


def test_model_info_names_the_checkpoint_file_not_the_server_path(keyed):
    body = keyed.get("/api/unet/model-info", headers=bearer(fresh_key())).json()
    assert body["checkpoint_path"] == "best_model.pth"


def test_rate_limit_is_per_key_with_retry_after(keyed):
    key = fresh_key()
    statuses = [keyed.get("/api/unet/model-info", headers=bearer(key)).status_code for _ in range(BURST)]
    assert statuses == [200] * BURST
    resp = keyed.get("/api/unet/model-info", headers=bearer(key))
    assert_error(resp, 429, "RATE_LIMITED")
    assert 1 <= int(resp.headers["retry-after"]) <= 60 / RATE
    assert keyed.get("/api/unet/model-info", headers=bearer(fresh_key())).status_code == 200  # another client
    assert keyed.get("/api/unet/health").status_code == 200  # open paths are not limited


def test_images_past_the_inflight_cap_get_503_overloaded_at_once(keyed):
    def segment(key: str) -> httpx.Response:
        return keyed.post("/api/unet/segment", {"image_data": photo(), "return_visualizations": True},
                          headers=bearer(key))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(segment, [fresh_key() for _ in range(8)]))
    refused = [r for r in answers if r.status_code != 200]
    assert refused and len(refused) < len(answers)
    for r in refused:
        assert_error(r, 503, "OVERLOADED")
        assert r.headers["retry-after"] == "1"
    assert segment(fresh_key()).status_code == 200  # the count went back down


def test_cors_allows_only_the_configured_origin(keyed):
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    ok = httpx.options(keyed.url + "/api/unet/segment", headers={"Origin": ORIGIN, **preflight})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in ok.headers["access-control-allow-headers"].lower()
    refused = httpx.options(keyed.url + "/api/unet/segment", headers={"Origin": "https://evil.example", **preflight})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    key = fresh_key()
    simple = keyed.get("/api/unet/model-info", headers={"Origin": ORIGIN, **bearer(key)})
    assert simple.status_code == 200 and simple.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
    other = keyed.get("/api/unet/model-info", headers={"Origin": "https://evil.example", **bearer(key)})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


def _series(metrics: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in metrics.splitlines() if line and not line.startswith("#")}


def test_unknown_paths_add_no_metric_series(keyed):
    key = fresh_key()
    assert_error(keyed.get("/api/unet/warm-up-path", headers=bearer(key)), 404, "NOT_FOUND")
    keyed.get("/warm-up-path")  # the one shared label gets its series (401 and 404) now
    before = _series(keyed.get("/metrics").text)
    for i in range(200):
        path = f"/{secrets.token_hex(6)}/{i}" if i % 2 else f"/api/unet/{secrets.token_hex(6)}"
        resp = httpx.request("POST" if i % 3 else "GET", keyed.url + path, timeout=30)
        assert_error(resp, 401, "UNAUTHORIZED")
    assert_error(keyed.get(f"/static_content/{secrets.token_hex(6)}.js", headers=bearer(key)), 404, "NOT_FOUND")
    after = _series(keyed.get("/metrics").text)
    assert after == before
    assert "warm-up-path" not in keyed.get("/metrics").text


def test_trailing_slash_with_a_forged_host_is_a_404_not_a_redirect(keyed):
    for headers in ({"Host": "evil.example"}, {"Host": "evil.example", **bearer(fresh_key())}):
        resp = httpx.post(keyed.url + "/api/unet/segment/", json={"image_data": photo()}, headers=headers)
        assert resp.status_code in (401, 404) and "location" not in resp.headers
        assert_error(resp, resp.status_code, "UNAUTHORIZED" if resp.status_code == 401 else "NOT_FOUND")
    assert resp.status_code == 404


def test_every_image_endpoint_needs_a_key_and_serves_with_one(keyed):
    """The route table's image endpoints (the try-on included) are behind the same keys as /segment."""
    from nailseg.api.routes import ROUTES

    raw = example_photos()[0][0].read_bytes()
    forms = {"tryon": {"color": "#C8143C"}}
    for route in (r for r in ROUTES.values() if r.images and r.form is not None):
        def call(headers):
            return httpx.post(keyed.url + route.path, files={"image": ("p.jpg", raw, "image/jpeg")},
                              data=forms.get(route.name), headers=headers, timeout=120)
        assert_error(call({}), 401, "UNAUTHORIZED")
        assert call(bearer(fresh_key())).status_code == 200, route.name


def test_every_kind_of_answer_says_nosniff(keyed):
    """X-Content-Type-Options: nosniff on our answers, every guard layer's refusals, unknown paths, the
    protocol's, BentoML's own routes and CORS' answers (the layer wraps all of them; 503: the inflight test)."""
    def with_key(method: str, path: str, **kw) -> httpx.Response:
        headers = {**bearer(fresh_key()), **kw.pop("headers", {})}
        return httpx.request(method, keyed.url + path, headers=headers, timeout=60, **kw)

    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    answers = {
        ("demo page", 200): keyed.get("/api/unet/demo"),
        ("health", 200): keyed.get("/api/unet/health"),
        ("readyz", 200): keyed.get("/readyz"), ("livez", 200): keyed.get("/livez"),
        ("metrics", 200): keyed.get("/metrics"),
        ("docs.json", 200): with_key("GET", "/docs.json"), ("swagger ui", 200): with_key("GET", "/"),
        ("static file", 200): with_key("GET", "/static_content/swagger-ui.css"),
        ("oip metadata", 200): with_key("GET", "/v2"), ("oip unknown model", 404): with_key("GET", "/v2/models/x"),
        ("no key", 401): keyed.get("/api/unet/model-info"),
        ("unknown path", 404): with_key("GET", "/api/unet/nope"),
        ("body too large", 413): with_key("POST", "/api/unet/segment", content=b"x" * (MAX_BODY_MB * 2**20 + 10),
                                          headers={"content-type": "application/json"}),
        ("not multipart", 415): with_key("POST", "/api/unet/segment-image", json={"image": photo()}),
        ("bad field", 422): with_key("POST", "/api/unet/segment", json={"image_data": photo(), "threshold": 2}),
        ("cors preflight", 200): httpx.options(keyed.url + "/api/unet/segment",
                                               headers={"Origin": ORIGIN, **preflight}),
        ("cors refused", 400): httpx.options(keyed.url + "/api/unet/segment",
                                             headers={"Origin": "https://evil.example", **preflight}),
    }
    key = fresh_key()
    for _ in range(BURST):
        keyed.get("/api/unet/model-info", headers=bearer(key))
    answers[("rate limited", 429)] = keyed.get("/api/unet/model-info", headers=bearer(key))
    for (name, status), resp in answers.items():
        assert resp.status_code == status, (name, resp.status_code, resp.text[:200])
        assert resp.headers.get_list("x-content-type-options") == ["nosniff"], name
