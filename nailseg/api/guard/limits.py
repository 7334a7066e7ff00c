"""How much work the API process takes on: a per-client rate limit and a cap on images in flight.

Both are per API process (each BentoML worker counts its own). Both answer at once with a
``Retry-After``, instead of letting requests queue until the timeout.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Container

from nailseg.api.guard.asgi import Receive, Scope, Send, state
from nailseg.api.guard.error_shape import Refusals
from nailseg.errors import ErrorCode

MAX_CLIENTS = 10_000  # buckets kept; the least recently seen go first (an idle bucket is full anyway)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per client: ``burst`` requests at once, refilled at ``per_minute`` a minute."""

    def __init__(self, per_minute: float, burst: int = 0, max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic):
        self.rate = per_minute / 60.0  # tokens a second
        self.capacity = float(burst or max(1, math.ceil(per_minute)))
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, client: str) -> int:
        """Take one token: 0 if the request may go, else the whole seconds until it may (Retry-After)."""
        if not self.enabled:
            return 0
        now = self.clock()
        bucket = self._buckets.pop(client, None) or _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[client] = bucket  # most recently seen last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0
        return max(1, math.ceil((1 - bucket.tokens) / self.rate))


class InflightImages:
    """Images being worked on in this process; past ``limit`` new work is refused, not queued.

    A request larger than the limit on its own is still taken when nothing else is in flight, so a
    full batch is never refused forever.
    """

    RETRY_AFTER_S = 1

    def __init__(self, limit: int, on_change: Callable[[int], None] | None = None):
        self.limit = limit
        self.count = 0
        self.on_change = on_change  # told the new count (the service's unet_inflight_images gauge)

    def full(self) -> bool:
        return self.count >= self.limit

    def try_acquire(self, n: int) -> bool:
        if self.count and self.count + n > self.limit:
            return False
        self.count += n
        if self.on_change is not None:
            self.on_change(self.count)
        return True

    def release(self, n: int) -> None:
        self.count -= n
        if self.on_change is not None:
            self.on_change(self.count)


def client_of(scope: Scope) -> str:
    """Who the rate limit counts: the caller's key (set by the access layer), else the client address."""
    caller = state(scope).get("caller")
    if caller:
        return caller
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:unknown"


class Admission:
    """ASGI layer, before the body is read: the per-client rate limit (429) and, for the image
    endpoints, a full in-flight cap (503) answer at once with a Retry-After."""

    def __init__(self, app, *, refusals: Refusals, rate_limit: RateLimiter | None = None,
                 inflight: InflightImages | None = None, image_paths: Container[str] = frozenset(),
                 open_paths: frozenset[str] = frozenset()):
        self.app, self.refusals = app, refusals
        self.rate_limit, self.inflight = rate_limit, inflight
        self.image_paths, self.open_paths = image_paths, open_paths  # open paths are not rate limited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if self.rate_limit is not None and path not in self.open_paths:
            if wait := self.rate_limit.acquire(client_of(scope)):
                return await self.refusals.send(scope, send, ErrorCode.RATE_LIMITED,
                                                f"too many requests; retry in {wait} s",
                                                headers=[(b"retry-after", str(wait).encode())])
        counted = self.inflight is not None and scope["method"] == "POST" and path in self.image_paths
        if counted and self.inflight.full():
            return await self.refusals.send(scope, send, *overloaded(self.inflight))
        if counted:
            state(scope)["inflight"] = self.inflight
        await self.app(scope, receive, send)


class InflightCap:
    """ASGI layer, after validation (which knows how many images a batch holds): takes the request's
    images from the in-flight count for as long as it is served, or refuses it (503) if they do not fit."""

    def __init__(self, app, *, refusals: Refusals):
        self.app, self.refusals = app, refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        s = state(scope) if scope["type"] == "http" else {}
        inflight: InflightImages | None = s.get("inflight")
        if inflight is None:
            return await self.app(scope, receive, send)
        images = s.get("images", 1)
        if not inflight.try_acquire(images):
            return await self.refusals.send(scope, send, *overloaded(inflight))
        try:
            await self.app(scope, receive, send)
        finally:
            inflight.release(images)


def overloaded(inflight: InflightImages) -> tuple:
    return (ErrorCode.OVERLOADED, f"the service is at its limit of {inflight.limit} images in flight; retry shortly",
            None, [(b"retry-after", str(inflight.RETRY_AFTER_S).encode())])
