"""Keys, rate limit, admission and unknown paths, in process (the same checks run against a real server
in test_e2e_security.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from nailseg.api import guard
from nailseg.api.known_paths import KnownPathsOnly, serves
from nailseg.api.guard.auth import (
    AccessPolicy,
    KeyRing,
    Role,
    presented_key,
    read_key_file,
    shown_checkpoint_path,
)
from nailseg.api.guard.limits import InflightImages, RateLimiter
from nailseg.config import ConfigError, load_settings

API_KEY, ADMIN_KEY, OTHER_KEY = "client-key-0123456789", "admin-key-0123456789", "other-key-0123456789"


@pytest.fixture
def anyio_backend():
    return "asyncio"


# ---- keys from config, environment and files ----------------------------------------------

def test_keys_come_from_the_environment_as_yaml_or_comma_separated():
    s = load_settings(environ={"UNET_SECURITY_API_KEYS": f"{API_KEY}, {OTHER_KEY}",
                               "UNET_SECURITY_ADMIN_KEYS": f"[{ADMIN_KEY}]"})
    assert [k.get_secret_value() for k in s.security.api_keys] == [API_KEY, OTHER_KEY]
    assert [k.get_secret_value() for k in s.security.admin_keys] == [ADMIN_KEY]
    assert API_KEY not in repr(s) and API_KEY not in str(s.security)  # never printed


def test_defaults_are_open_with_no_cors_no_limits_and_no_server_paths():
    s = load_settings(environ={})
    assert not KeyRing.from_settings(s.security).enabled
    assert s.security.cors_origins == [] and s.security.expose_server_paths is False
    assert s.limits.rate_limit_per_minute == 0 and not RateLimiter(0).enabled
    assert s.max_inflight_images == s.inference.batch_size * s.memory.pool_size_multiplier * 4


def test_a_short_key_is_refused_without_printing_it():
    with pytest.raises(ConfigError, match="unet.security.api_keys: .*at least 16 characters") as e:
        load_settings(environ={"UNET_SECURITY_API_KEYS": "hunter2"})
    assert "hunter2" not in str(e.value)


def test_key_file_skips_comments_and_blank_lines_and_is_relative_to_the_config(tmp_path):
    (tmp_path / "keys.txt").write_text(f"# rotated 2026-11\n{API_KEY}\n\n  {OTHER_KEY}  # the CI key\n")
    config = tmp_path / "config.yaml"
    config.write_text("unet:\n  security:\n    api_keys_file: keys.txt\n")
    s = load_settings(config, environ={})
    assert read_key_file(s.security.api_keys_file) == [API_KEY, OTHER_KEY]
    ring = KeyRing.from_settings(s.security)
    assert ring.identify(OTHER_KEY).role is Role.CLIENT and ring.identify("# rotated 2026-11").role is Role.ANONYMOUS
    (tmp_path / "keys.txt").write_text("short\n")
    with pytest.raises(ConfigError, match="at least 16 characters"):
        KeyRing.from_settings(s.security)
    s.security.api_keys_file = tmp_path / "missing.txt"
    with pytest.raises(ConfigError, match="cannot read the key file"):
        KeyRing.from_settings(s.security)


def test_key_ring_tells_clients_admins_and_strangers_apart():
    ring = KeyRing([API_KEY], [ADMIN_KEY])
    assert ring.identify(API_KEY).role is Role.CLIENT and ring.identify(ADMIN_KEY).role is Role.ADMIN
    for wrong in (None, "", OTHER_KEY, API_KEY[:-1], API_KEY + "x"):
        assert ring.identify(wrong).role is Role.ANONYMOUS and ring.identify(wrong).key_id is None
    assert ring.identify(API_KEY).key_id != ring.identify(ADMIN_KEY).key_id
    assert API_KEY not in ring.identify(API_KEY).key_id


@pytest.mark.parametrize("headers, key", [
    ({b"authorization": f"Bearer {API_KEY}".encode()}, API_KEY),
    ({b"authorization": f"bearer  {API_KEY} ".encode()}, API_KEY),
    ({b"x-api-key": API_KEY.encode()}, API_KEY),
    ({b"authorization": b"Basic dXNlcjpwYXNz"}, None),
    ({b"authorization": b"Bearer "}, None),
    ({}, None),
])
def test_key_is_read_from_bearer_or_x_api_key(headers, key):
    assert presented_key(headers) == key


def test_model_info_shows_the_file_name_unless_told_otherwise():
    assert shown_checkpoint_path("/srv/models/unet/best_model.pth", False) == "best_model.pth"
    assert shown_checkpoint_path("/srv/models/unet/best_model.pth", True) == "/srv/models/unet/best_model.pth"


# ---- rate limit and admission --------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_refills_at_the_rate():
    clock = Clock()
    limiter = RateLimiter(per_minute=30, burst=3, clock=clock)  # one token every 2 s
    assert [limiter.acquire("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire("a") == 2  # Retry-After: whole seconds until the next token
    assert limiter.acquire("b") == 0  # another client has its own bucket
    clock.now += 2
    assert limiter.acquire("a") == 0 and limiter.acquire("a") > 0
    clock.now += 3600
    assert [limiter.acquire("a") for _ in range(4)] == [0, 0, 0, 2]  # refills to the burst, not beyond


def test_burst_zero_means_a_minutes_worth():
    limiter = RateLimiter(per_minute=5, clock=Clock())
    assert [limiter.acquire("a") for _ in range(6)] == [0] * 5 + [12]


def test_rate_limiter_memory_is_bounded_by_evicting_the_least_recently_seen():
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=1, max_clients=100, clock=clock)
    assert limiter.acquire("busy") == 0
    for i in range(10_000):
        limiter.acquire(f"client-{i}")
        if i % 50 == 0:
            assert limiter.acquire("busy") > 0  # recently seen: kept, still empty
    assert len(limiter) == 100


def test_inflight_images_refuses_past_the_limit_but_never_starves_a_big_batch():
    inflight = InflightImages(4)
    assert inflight.try_acquire(3) and not inflight.try_acquire(2) and inflight.try_acquire(1)
    assert inflight.full()
    inflight.release(4)
    assert inflight.try_acquire(10)  # alone: taken even though it is over the limit
    assert not inflight.try_acquire(1)


# ---- the guard in front of a small app -----------------------------------------------------

class Batch(BaseModel):
    images: list[str]


def _app(gate: asyncio.Event | None = None, **layers) -> Starlette:
    async def ok(request):
        if gate is not None and request.url.path != "/health":
            await gate.wait()
        return JSONResponse({"success": True})

    routes = [Route(p, ok, methods=["GET", "POST"]) for p in ("/work", "/batch", "/admin", "/readyz", "/health")]
    options = dict(max_body_bytes=1000, validated={"/batch": Batch}, model_info=lambda: None)
    return KnownPathsOnly(Starlette(routes=routes, middleware=[
        Middleware(CORSMiddleware, allow_origins=["https://nails.example"], allow_methods=["GET", "POST"],
                   allow_headers=["Authorization", "X-API-Key", "Content-Type"], expose_headers=["X-Request-ID"]),
        *(Middleware(layer, **kw) for layer, kw in guard.layers(**options, **layers))]))


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def _policy() -> AccessPolicy:
    return AccessPolicy(KeyRing([API_KEY], [ADMIN_KEY]), frozenset({"/readyz", "/health"}), frozenset({"/admin"}))


def _error(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["success"] is False and body["error"]["code"] == code
    assert body["request_id"] == resp.headers["x-request-id"]
    return body


@pytest.mark.anyio
async def test_keys_401_403_and_open_paths():
    async with _client(_app(access=_policy())) as c:
        for headers in ({}, {"Authorization": f"Bearer {OTHER_KEY}"}, {"X-API-Key": "x" * 20}):
            resp = await c.get("/work", headers=headers)
            _error(resp, 401, "UNAUTHORIZED")
            assert resp.headers["www-authenticate"].startswith("Bearer")
        assert (await c.get("/work", headers={"Authorization": f"Bearer {API_KEY}"})).status_code == 200
        assert (await c.get("/work", headers={"X-API-Key": ADMIN_KEY})).status_code == 200  # admin keys are API keys
        _error(await c.post("/admin", headers={"X-API-Key": API_KEY}), 403, "FORBIDDEN")
        assert (await c.post("/admin", headers={"X-API-Key": ADMIN_KEY})).status_code == 200
        assert (await c.get("/readyz")).status_code == 200 and (await c.get("/health")).status_code == 200


@pytest.mark.anyio
async def test_keys_without_an_admin_key_refuse_admin_endpoints_to_everyone():
    policy = AccessPolicy(KeyRing([API_KEY]), frozenset(), frozenset({"/admin"}))
    async with _client(_app(access=policy)) as c:
        body = _error(await c.post("/admin", headers={"X-API-Key": API_KEY}), 403, "FORBIDDEN")
        assert "none is configured" in body["error"]["message"]


@pytest.mark.anyio
async def test_no_keys_means_open():
    async with _client(_app(access=AccessPolicy(KeyRing(), frozenset(), frozenset({"/admin"})))) as c:
        assert (await c.post("/admin")).status_code == 200 and (await c.get("/work")).status_code == 200


@pytest.mark.anyio
async def test_debug_paths_are_never_open():
    """Debug endpoints: only an admin key, even where the service is open or the path is listed as public;
    with no admin key configured, nobody."""
    debug = frozenset({"/admin"})
    for keys in (KeyRing(), KeyRing([API_KEY])):  # open, and keys without an admin key
        async with _client(_app(access=AccessPolicy(keys, frozenset({"/admin"}), debug, debug))) as c:
            for headers in ({}, {"X-API-Key": API_KEY}):
                body = _error(await c.post("/admin", headers=headers), 403, "FORBIDDEN")
                assert "security.admin_keys" in body["error"]["message"]
            assert (await c.get("/work", headers={"X-API-Key": API_KEY})).status_code == 200
    policy = AccessPolicy(KeyRing([API_KEY], [ADMIN_KEY]), frozenset({"/admin"}), debug, debug)
    async with _client(_app(access=policy)) as c:
        _error(await c.post("/admin"), 401, "UNAUTHORIZED")
        _error(await c.post("/admin", headers={"X-API-Key": API_KEY}), 403, "FORBIDDEN")
        assert (await c.post("/admin", headers={"X-API-Key": ADMIN_KEY})).status_code == 200


@pytest.mark.anyio
async def test_rate_limit_is_per_key_with_retry_after_and_spares_open_paths():
    limiter = RateLimiter(per_minute=1, burst=2)
    async with _client(_app(access=_policy(), rate_limit=limiter)) as c:
        key = {"X-API-Key": API_KEY}
        assert [(await c.get("/work", headers=key)).status_code for _ in range(2)] == [200, 200]
        resp = await c.get("/work", headers=key)
        _error(resp, 429, "RATE_LIMITED")
        assert 1 <= int(resp.headers["retry-after"]) <= 60
        assert (await c.get("/work", headers={"X-API-Key": ADMIN_KEY})).status_code == 200  # its own bucket
        assert [(await c.get("/readyz")).status_code for _ in range(5)] == [200] * 5


@pytest.mark.anyio
async def test_rate_limit_without_keys_is_per_client_address():
    async with _client(_app(rate_limit=RateLimiter(per_minute=1, burst=1))) as c:
        assert (await c.get("/work")).status_code == 200
        _error(await c.get("/work"), 429, "RATE_LIMITED")


@pytest.mark.anyio
async def test_images_past_the_inflight_limit_get_503_at_once_and_the_count_is_released():
    gate = asyncio.Event()
    inflight = InflightImages(3)
    app = _app(gate, inflight=inflight, image_paths=frozenset({"/work", "/batch"}))
    async with _client(app) as c:
        held = asyncio.create_task(c.post("/batch", json={"images": ["a", "b"]}))
        while inflight.count < 2:
            await asyncio.sleep(0.01)
        resp = await c.post("/batch", json={"images": ["a", "b"]})  # 2 + 2 > 3
        _error(resp, 503, "OVERLOADED")
        assert resp.headers["retry-after"] == "1"
        one = asyncio.create_task(c.post("/work"))  # 2 + 1 fits
        while inflight.count < 3:
            await asyncio.sleep(0.01)
        _error(await c.post("/work"), 503, "OVERLOADED")  # full: refused before the body is read
        assert (await c.get("/health")).status_code == 200  # other paths are not counted
        gate.set()
        assert (await held).status_code == 200 and (await one).status_code == 200
        assert inflight.count == 0
        _error(await c.post("/batch", json={"images": "x"}), 422, "INVALID_REQUEST")
        assert inflight.count == 0


@pytest.mark.anyio
async def test_cors_allows_only_the_named_origin_and_covers_the_guards_errors():
    async with _client(_app(access=_policy())) as c:
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        ok = await c.options("/work", headers={"Origin": "https://nails.example", **preflight})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://nails.example"
        refused = await c.options("/work", headers={"Origin": "https://evil.example", **preflight})
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
        simple = await c.get("/work", headers={"Origin": "https://nails.example", "X-API-Key": API_KEY})
        assert simple.headers["access-control-allow-origin"] == "https://nails.example"
        denied = await c.get("/work", headers={"Origin": "https://nails.example"})  # 401, still readable by the page
        assert denied.status_code == 401 and denied.headers["access-control-allow-origin"] == "https://nails.example"
        other = await c.get("/work", headers={"Origin": "https://evil.example", "X-API-Key": API_KEY})
        assert "access-control-allow-origin" not in other.headers


# ---- unknown paths -------------------------------------------------------------------------

def test_serves_knows_routes_mounts_and_existing_static_files(tmp_path):
    (tmp_path / "app.js").write_text("1")
    inner = Starlette(routes=[Route("/health", lambda r: None)])
    routes = Starlette(routes=[Route("/work", lambda r: None, methods=["POST"]), Mount("/api", inner),
                               Mount("/static", StaticFiles(directory=tmp_path))]).router.routes

    def known(path, method="GET"):
        return serves(routes, {"type": "http", "path": path, "method": method, "root_path": ""})

    assert known("/work") and known("/work", "POST") and known("/api/health") and known("/static/app.js")
    assert not any(known(p) for p in ("/work/", "/nope", "/api/nope", "/api/health/", "/static/none.js", "/api"))


@pytest.mark.anyio
async def test_unknown_paths_and_trailing_slashes_are_404_never_redirects():
    async with _client(_app()) as c:
        for path in ("/work/", "/nothing", "/batch/"):
            resp = await c.post(path, headers={"Host": "evil.example"})
            _error(resp, 404, "NOT_FOUND")
            assert "location" not in resp.headers
