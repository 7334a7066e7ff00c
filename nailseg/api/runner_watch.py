"""The API's view of the runner: is it reachable now, and since when has it not been?

BentoML's dependency client waits up to the runner's traffic timeout (~121 s) for an answer, and
while the runner process is dead its socket (held open by the serve arbiter) still accepts
connections that nobody reads. So the API watches the runner itself: a probe of the runner's
``ping`` API every ``health.runner_probe_interval_s`` with a short timeout. After
``health.runner_probe_failures`` failed probes in a row the runner is *down*: calls fail at once
with 503 ``RUNNER_UNAVAILABLE`` (a circuit breaker), calls in flight are abandoned with the same
answer, and the next good probe closes the circuit again. ``/livez`` fails once the runner has been
down (or never up) for ``health.liveness_runner_timeout_s``, so a liveness probe restarts the pod.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, TypeVar

from nailseg.config import HealthSettings
from nailseg.errors import ApiError, ErrorCode

log = logging.getLogger("unet.api")
T = TypeVar("T")
Probe = Callable[[float], Awaitable[bool]]


def unavailable(why: str) -> ApiError:
    return ApiError(ErrorCode.RUNNER_UNAVAILABLE, f"the inference runner is not reachable ({why}); retry shortly")


class RunnerWatch:
    def __init__(self, probe: Probe, health: HealthSettings, clock: Callable[[], float] = time.monotonic):
        self._probe = probe
        self._h = health
        self._clock = clock
        self.up = False
        self.ever_up = False
        self.since = clock()  # when ``up`` last changed (start-up counts as down)
        self._failures = 0
        self._down = asyncio.Event()
        self._down.set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start probing (idempotent; needs a running event loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def suspect(self) -> None:
        """A call saw the connection drop: probe now instead of at the next interval."""
        self._wake.set()

    @property
    def down_for(self) -> float:
        return 0.0 if self.up else self._clock() - self.since

    @property
    def alive(self) -> bool:
        """False once the runner has been unreachable longer than liveness allows."""
        return self.up or self.down_for < self._h.liveness_runner_timeout_s

    async def probe_once(self) -> bool:
        try:
            ok = await asyncio.wait_for(self._probe(self._h.runner_probe_timeout_s), self._h.runner_probe_timeout_s)
        except Exception:  # refused, reset, timed out: all mean "not reachable now"
            ok = False
        self._record(ok)
        return ok

    def _record(self, ok: bool) -> None:
        self._failures = 0 if ok else self._failures + 1
        if ok and not self.up:
            self.up, self.ever_up, self.since = True, True, self._clock()
            self._down.clear()
            log.info("runner reachable")
        elif not ok and self.up and self._failures >= self._h.runner_probe_failures:
            self.up, self.since = False, self._clock()
            self._down.set()
            log.error("runner unreachable (%d failed probes); answering 503 RUNNER_UNAVAILABLE", self._failures)

    async def _loop(self) -> None:
        while True:
            await self.probe_once()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._h.runner_probe_interval_s)
            except asyncio.TimeoutError:
                pass

    async def call(self, make_call: Callable[[], Awaitable[T]]) -> T:
        """Run one runner call unless the runner is down; abandon it if the runner goes down meanwhile."""
        self.start()
        if not self.ever_up:  # just started: ask now rather than refuse the first requests
            await self.probe_once()
        if not self.up:
            raise unavailable("down" if self.ever_up else "not started yet")
        call = asyncio.ensure_future(make_call())
        down = asyncio.ensure_future(self._down.wait())
        try:
            await asyncio.wait({call, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            down.cancel()
        if not call.done():
            call.cancel()
            raise unavailable("it went down during the call")
        return call.result()
