"""Each of the guard's layers on its own (tests/test_security.py drives them together)."""

from __future__ import annotations

import asyncio
import json

import httpx
from pydantic import BaseModel, ConfigDict
from starlette.applications import Starlette
from starlette.routing import Route

from nailseg.api.guard.asgi import state
from nailseg.api.guard.error_shape import ErrorShape, Refusals
from nailseg.api.guard.headers import NoSniff
from nailseg.api.guard.limits import Admission, InflightCap, InflightImages, RateLimiter
from nailseg.api.guard.request_id import RequestIds
from nailseg.api.guard.validation import Validation, validated_request


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    images: list[int]


def _call(app, path="/x", body=b"", headers=(), method="POST"):
    sent = []
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": list(headers), "client": ("1.2.3.4", 5)}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, out, sent


def _app(seen: dict, status=200, body=b'{"ok": true}'):
    async def app(scope, receive, send):
        seen["scope"], seen["body"] = scope, (await receive()).get("body", b"")
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})
    return app


REFUSALS = Refusals(lambda: None)


def test_request_ids_keep_a_sane_one_replace_the_rest_and_answer_with_it():
    seen = {}
    _, _, sent = _call(RequestIds(_app(seen)), headers=[(b"x-request-id", b"abc-1")])
    assert (b"x-request-id", b"abc-1") in sent[0]["headers"] and state(seen["scope"])["request_id"] == "abc-1"
    _, _, sent = _call(RequestIds(_app(seen)), headers=[(b"x-request-id", b"<script>")])
    given = dict(sent[0]["headers"])[b"x-request-id"]
    assert given != b"<script>" and len(given) == 36


def test_nosniff_is_on_every_answer_once_even_starlettes_own_500():
    seen = {}
    _, _, sent = _call(NoSniff(_app(seen)))
    assert (b"x-content-type-options", b"nosniff") in sent[0]["headers"]

    async def says_it_too(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"X-Content-Type-Options", b"no")]})
        await send({"type": "http.response.body", "body": b""})

    _, _, sent = _call(NoSniff(says_it_too))
    assert [v for k, v in sent[0]["headers"] if k.lower() == b"x-content-type-options"] == [b"nosniff"]

    async def fails(request):
        raise RuntimeError("boom")

    app = NoSniff(Starlette(routes=[Route("/x", fails)]))  # the 500 of Starlette's outermost layer

    async def get():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/x")

    resp = asyncio.run(get())
    assert resp.status_code == 500 and resp.headers["x-content-type-options"] == "nosniff"


def test_error_shape_rewrites_foreign_errors_and_passes_ours_and_successes():
    seen = {}
    status, body, _ = _call(ErrorShape(_app(seen, 404, b"Not Found"), refusals=REFUSALS))
    assert status == 404 and json.loads(body)["error"]["code"] == "NOT_FOUND"
    ours = b'{"success": false, "error": {"code": "X", "message": "m"}}'
    assert _call(ErrorShape(_app(seen, 400, ours), refusals=REFUSALS))[1] == ours
    assert _call(ErrorShape(_app(seen, 200, b"fine"), refusals=REFUSALS))[1] == b"fine"
    status, body, _ = _call(ErrorShape(_app(seen, 404, b"Not Found"), refusals=REFUSALS), path="/v2/models/x")
    assert json.loads(body) == {"error": "no such endpoint"}  # the protocol's shape on its paths


def test_validation_parses_json_once_and_hands_the_model_on():
    seen = {}
    layer = Validation(_app(seen), refusals=REFUSALS, max_body_bytes=100, validated={"/x": Body})
    status, _, _ = _call(layer, body=b'{"images": [1, 2]}', headers=[(b"content-type", b"application/json")])
    assert status == 200 and validated_request(seen["scope"]) == Body(images=[1, 2])
    assert seen["body"] == b"{}" and state(seen["scope"])["images"] == 2  # BentoML's parser gets an empty object
    status, body, _ = _call(layer, body=b'{"images": ["1"]}')
    assert status == 422 and json.loads(body)["error"]["details"][0]["field"] == "images.0"
    assert _call(layer, body=b"{" * 200)[0] == 413
    assert _call(layer, body=b"{}", headers=[(b"content-type", b"multipart/form-data")])[0] == 415


def test_admission_rate_limits_and_refuses_a_full_cap_before_the_body():
    seen = {}
    limiter = RateLimiter(per_minute=1, burst=1)
    layer = Admission(_app(seen), refusals=REFUSALS, rate_limit=limiter)
    assert _call(layer)[0] == 200
    status, _, sent = _call(layer)
    assert status == 429 and (b"retry-after", b"60") in sent[0]["headers"]
    inflight = InflightImages(1)
    inflight.try_acquire(1)
    untouched: dict = {}
    layer = Admission(_app(untouched), refusals=REFUSALS, inflight=inflight, image_paths={"/x"})
    assert _call(layer)[0] == 503 and not untouched  # refused before the app (and the body) is reached


def test_inflight_cap_holds_the_requests_images_while_it_is_served():
    gauge: list[int] = []  # what the unet_inflight_images gauge is set to
    inflight, during = InflightImages(4, on_change=gauge.append), []

    async def app(scope, receive, send):
        during.append(inflight.count)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    layer = InflightCap(app, refusals=REFUSALS)

    async def run():
        sent = []
        scope = {"type": "http", "path": "/x", "headers": [], "state": {"unet": {"inflight": inflight, "images": 3}}}
        await layer(scope, None, lambda m: asyncio.sleep(0, sent.append(m)))
        return sent

    asyncio.run(run())
    assert during == [3] and inflight.count == 0
    assert gauge == [3, 0]
