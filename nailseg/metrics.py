"""The service's own Prometheus metrics, on BentoML's /metrics (prometheus_client, multi-process).

BentoML runs every worker with PROMETHEUS_MULTIPROC_DIR set and merges all processes' samples on
/metrics (API and runner alike). ``prometheus_client`` must be imported only after that variable is
set, or it stays in single-process mode and the samples never reach /metrics: so every metric is
made on first use (``get()``), inside a worker, never at import time.

| metric | type | labels | where |
|---|---|---|---|
| unet_requests_total | counter | endpoint, code (error code or OK) | API (RequestMetrics) |
| unet_images_total | counter | endpoint | API: images segmented |
| unet_stage_seconds | histogram | stage (decode, runner, encode) | API |
| unet_inflight_images | gauge | | API: images being worked on now (summed over workers) |
| unet_batch_size | histogram | | runner: images per model call |
| unet_inference_seconds | histogram | | runner: one model call |
| unet_pool_utilization | gauge | | runner: buffer slots in use / capacity |
| unet_model_info | gauge (1) | tag, backend, precision, device | runner: the model served |

Inside ``request_stages()`` (one request's way through the API), ``timed`` also adds each stage's time to
that request's own totals: the perf log line and the debug endpoints read them, nothing is timed twice.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import time
from typing import Any, Callable, Iterator

STAGES = ("decode", "runner", "encode")
# this request's seconds per stage, summed; None outside request_stages() (nothing is collected)
_request_stages: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar("unet_request_stages",
                                                                                          default=None)
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter("unet_requests_total", "API requests by endpoint and answer (error code or OK)",
                                ["endpoint", "code"])
        self.images = Counter("unet_images_total", "images segmented, by endpoint", ["endpoint"])
        self.stage = Histogram("unet_stage_seconds", "time per image stage in the API service", ["stage"],
                               buckets=_SECONDS)
        self.batch_size = Histogram("unet_batch_size", "images per model call in the runner",
                                    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64))
        self.inference = Histogram("unet_inference_seconds", "one model call in the runner", buckets=_SECONDS)
        self.inflight = Gauge("unet_inflight_images", "images the API works on now (limits.max_inflight_images)",
                              multiprocess_mode="livesum")
        self.pool = Gauge("unet_pool_utilization", "runner buffer slots in use / capacity", multiprocess_mode="livemax")
        self.model_info = Gauge("unet_model_info", "the model the runner serves (1; 0 for one it served before)",
                                ["tag", "backend", "precision", "device"], multiprocess_mode="livemax")
        self._model_labels: dict[str, str] | None = None

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.stage.labels(stage).observe(elapsed)
            if (stages := _request_stages.get()) is not None:
                stages[stage] = stages.get(stage, 0.0) + elapsed

    def model_served(self, **labels: str) -> None:
        if self._model_labels is not None and self._model_labels != labels:
            self.model_info.labels(**self._model_labels).set(0)
        self.model_info.labels(**labels).set(1)
        self._model_labels = labels


@functools.cache
def get() -> Metrics:
    return Metrics()


@contextlib.contextmanager
def request_stages() -> Iterator[dict[str, float]]:
    """This request's seconds per stage (decode, runner, encode), as ``timed`` measures them inside, worker
    threads started with ``asyncio.to_thread`` included (they run in a copy of the context)."""
    stages: dict[str, float] = {}
    token = _request_stages.set(stages)
    try:
        yield stages
    finally:
        _request_stages.reset(token)


class RequestMetrics:
    """ASGI middleware (outside RequestGuard, so its refusals count too): unet_requests_total by the
    answer's error code (read from our error body: small) or OK. ``endpoint_of``: a path's label, None for
    a path that is no endpoint (the route table's names)."""

    def __init__(self, app, *, endpoint_of: Callable[[str], str | None]) -> None:
        self.app = app
        self.endpoint_of = endpoint_of

    async def __call__(self, scope, receive, send) -> None:
        endpoint = self.endpoint_of(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None:
            return await self.app(scope, receive, send)
        state: dict[str, Any] = {"status": 500, "body": []}

        async def watch(message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body" and state["status"] >= 400:
                state["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            get().requests.labels(endpoint, _code(state["status"], b"".join(state["body"]))).inc()


def _code(status: int, body: bytes) -> str:
    if status < 400:
        return "OK"
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP_{status}"
