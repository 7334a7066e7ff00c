"""Closed-loop HTTP load: C clients, each sends its next request when the last one returns."""

from __future__ import annotations

import asyncio
import itertools
import time

import httpx
import numpy as np
from pydantic import BaseModel


class LoadResult(BaseModel):
    concurrency: int
    requests: int
    errors: int
    seconds: float
    images_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


async def _run(url: str, bodies: list[bytes], concurrency: int, seconds: float, max_requests: int) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    counter = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                i = next(counter)
                if i >= max_requests:
                    return
                started = time.perf_counter()
                try:
                    resp = await client.post(url, content=bodies[i % len(bodies)],
                                             headers={"content-type": "application/json"})
                    ok = resp.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies or [float("nan")]) * 1000
    return LoadResult(concurrency=concurrency, requests=len(latencies) + errors, errors=errors, seconds=elapsed,
                      images_per_s=len(latencies) / elapsed, p50_ms=float(np.percentile(ms, 50)),
                      p95_ms=float(np.percentile(ms, 95)), p99_ms=float(np.percentile(ms, 99)))


def closed_loop(url: str, bodies: list[bytes], concurrency: int, seconds: float, max_requests: int = 100_000,
                warmup: int = 4) -> LoadResult:
    """Warm up with a few requests, then measure for ``seconds`` (bounded by ``max_requests``)."""
    asyncio.run(_run(url, bodies, min(concurrency, warmup), 60, warmup))
    return asyncio.run(_run(url, bodies, concurrency, seconds, max_requests))
