"""The API's runner watch (circuit breaker, readiness, liveness) and request ids in error logs."""

from __future__ import annotations

import asyncio
import logging

import pytest

from nailseg import logs as reqlog
from nailseg.api.runner_watch import RunnerWatch
from nailseg.config import HealthSettings
from nailseg.errors import ApiError, ErrorCode


class FakeRunner:
    def __init__(self):
        self.answering = True
        self.probes = 0

    async def probe(self, timeout: float) -> bool:
        self.probes += 1
        if not self.answering:
            await asyncio.sleep(3600)  # a dead runner's socket: connects, never answers
        return True


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


HEALTH = HealthSettings(runner_probe_interval_s=0.05, runner_probe_timeout_s=0.1, runner_probe_failures=2,
                        liveness_runner_timeout_s=30)


async def _forever():
    await asyncio.sleep(3600)


def test_calls_pass_while_the_runner_answers_and_fail_fast_once_it_is_down():
    async def main():
        runner, clock = FakeRunner(), Clock()
        watch = RunnerWatch(runner.probe, HEALTH, clock)
        assert await watch.call(lambda: asyncio.sleep(0, "ok")) == "ok"
        runner.answering = False
        with pytest.raises(ApiError) as hung:  # a call waiting on the dead runner is answered, not left hanging
            await asyncio.wait_for(watch.call(_forever), 10)
        with pytest.raises(ApiError) as fast:
            await watch.call(_forever)
        assert hung.value.code == fast.value.code == ErrorCode.RUNNER_UNAVAILABLE and not watch.up
        assert watch.alive  # not yet down for liveness_runner_timeout_s
        clock.now += HEALTH.liveness_runner_timeout_s + 1
        assert not watch.alive
        runner.answering = True
        for _ in range(100):
            if watch.up:
                break
            await asyncio.sleep(0.05)
        assert watch.up and watch.alive
        assert await watch.call(lambda: asyncio.sleep(0, "back")) == "back"
        await watch.stop()

    asyncio.run(main())


def test_one_slow_probe_does_not_mark_the_runner_down():
    async def main():
        runner = FakeRunner()
        watch = RunnerWatch(runner.probe, HEALTH)
        assert await watch.probe_once()
        runner.answering = False
        assert not await watch.probe_once() and watch.up  # one failure: still up
        assert not await watch.probe_once() and not watch.up  # runner_probe_failures in a row: down

    asyncio.run(main())


def test_a_runner_never_seen_is_not_alive_after_the_liveness_timeout():
    async def main():
        runner, clock = FakeRunner(), Clock()
        runner.answering = False
        watch = RunnerWatch(runner.probe, HEALTH, clock)
        with pytest.raises(ApiError, match="not started yet"):
            await watch.call(_forever)
        assert watch.alive
        clock.now += HEALTH.liveness_runner_timeout_s + 1
        assert not watch.alive
        await watch.stop()

    asyncio.run(main())


def test_error_logs_name_the_request_they_happened_in(caplog):
    reqlog.install()
    reqlog.install()  # idempotent: one prefix, not two
    log = logging.getLogger("unet.test")

    def handle(request_id: str) -> None:
        reqlog.request_id.set(request_id)
        log.error("boom")
        log.info("fine")

    import contextvars

    with caplog.at_level(logging.INFO, logger="unet.test"):
        contextvars.copy_context().run(handle, "req-42")
        log.error("outside")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["[request req-42] boom", "fine", "outside"]
