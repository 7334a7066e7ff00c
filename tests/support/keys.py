"""The keyed server's keys and limits (the ``keyed`` fixture, tests/support/fixtures.py)."""

from __future__ import annotations

import secrets

KEYS = [secrets.token_hex(16) for _ in range(60)]  # one per test (or thread): the rate limit is per key
ADMIN_KEY, FILE_KEY = secrets.token_hex(16), secrets.token_hex(16)
ORIGIN = "https://nails.example"
RATE, BURST, MAX_INFLIGHT = 6, 3, 2  # per minute: a key gets 3 requests at once, then one per 10 s
OPEN_PATHS = ["/readyz", "/livez", "/healthz", "/metrics", "/api/unet/health"]
_unused = iter(KEYS)


def fresh_key() -> str:
    return next(_unused)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
