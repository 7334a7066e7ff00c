"""How much work the API process takes on: a per-client rate limit and a cap on images in flight.

Both are per API process (each BentoML worker counts its own). Both answer at once with a
``Retry-After``, instead of letting requests queue until the timeout.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

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

    def __init__(self, limit: int):
        self.limit = limit
        self.count = 0

    def full(self) -> bool:
        return self.count >= self.limit

    def try_acquire(self, n: int) -> bool:
        if self.count and self.count + n > self.limit:
            return False
        self.count += n
        return True

    def release(self, n: int) -> None:
        self.count -= n
