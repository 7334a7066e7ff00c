"""The API's calls to the runner: retried where that is safe, failed fast while the runner is down.

While the runner is down (``RunnerWatch``) a call fails at once with 503 RUNNER_UNAVAILABLE. Calls are
retried (they are idempotent) on a dropped connection and, with back-off, on the batcher's 503
"overloaded" (a queue spike, e.g. during a model reload). The dropped connection is an idle keep-alive
race (aio-libs/aiohttp#7297: the runner's server closes an idle pooled connection just as the
dependency client reuses it; aiohttp's fix, aio-libs/aiohttp#7363, retries only idempotent *methods*,
and BentoML's runner calls are POSTs) or the runner dying: the watch is told, and fails the retry if so.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from http import HTTPStatus

import aiohttp
import bentoml

from nailseg.api.runner_watch import RunnerWatch, unavailable
from nailseg.api.schemas import RunnerStatus
from nailseg.config import HealthSettings
from nailseg.errors import ApiError, ErrorCode

log = logging.getLogger("unet.api")
RUNNER_RETRIES = 3  # on a dropped connection
OVERLOAD_BACKOFF_S = 0.1  # first wait after the batcher's 503 "overloaded"; doubles, at most 1 s
OVERLOAD_RETRY_S = 15  # keep retrying those this long: a hot reload slows the runner for seconds on a small CPU


class RunnerClient:
    def __init__(self, runner, health: HealthSettings):
        self.runner = runner  # the bentoml.depends proxy (or, in development, the runner itself)
        self.watch = RunnerWatch(self._probe, health)
        self.status: RunnerStatus | None = None  # the runner's last report (model, preprocessing, device)

    async def _probe(self, timeout: float) -> bool:
        """The runner process answers its ``ping`` API within ``timeout``."""
        remote = getattr(self.runner, "to_async", None)
        if remote is None:
            return True  # in-process (development) runner
        return bool(await asyncio.wait_for(remote.ping(), timeout))

    async def call(self, method: str, *args, failed: ApiError | None = None, **kwargs):
        """Call the runner, mapping failures to ApiError (``failed``, where given, for a call that failed)."""
        patience = time.monotonic() + OVERLOAD_RETRY_S
        for attempt in itertools.count():
            try:
                return await self.watch.call(lambda: getattr(self.runner.to_async, method)(*args, **kwargs))
            except asyncio.TimeoutError:  # before ClientConnectionError: aiohttp's timeouts are both
                self.watch.suspect()
                raise unavailable("no answer within the runner's timeout") from None
            except aiohttp.ClientConnectionError:
                self.watch.suspect()
                if attempt >= RUNNER_RETRIES:
                    raise unavailable("connection lost") from None
            except bentoml.exceptions.BentoMLException as e:
                overloaded = e.error_code == HTTPStatus.SERVICE_UNAVAILABLE
                if not overloaded or time.monotonic() > patience:
                    log.warning("runner call %s failed: %s", method, e)
                    raise (failed if failed is not None and not overloaded else ApiError(
                        ErrorCode.RUNNER_UNAVAILABLE,
                        "the inference runner could not take the request (overloaded or restarting); retry shortly",
                    )) from None
                await asyncio.sleep(min(OVERLOAD_BACKOFF_S * 2**attempt, 1.0))

    def remember(self, status) -> RunnerStatus:
        """Keep the runner's report (it arrives as the runner's RunnerStatus class or a dict)."""
        self.status = RunnerStatus.model_validate(status.model_dump() if hasattr(status, "model_dump") else status)
        return self.status

    async def refresh(self, refresh: bool = False) -> RunnerStatus:
        """The runner's state now; MODEL_NOT_READY while it serves no model."""
        status = self.remember(await self.call("status", refresh=refresh))
        if status.model is None:
            raise ApiError(ErrorCode.MODEL_NOT_READY, status.error or "no model is loaded")
        return status

    async def model_status(self) -> RunnerStatus:
        """The last report if it had a model, else a fresh one."""
        s = self.status
        return s if s is not None and s.model is not None else await self.refresh()

    async def reload(self, force_reload: bool, warm_up: bool) -> RunnerStatus:
        failed = ApiError(ErrorCode.MODEL_NOT_READY, "loading the store's latest model failed (see the runner's "
                          "log); the previous model is still served")
        status = self.remember(await self.call("reload", force_reload=force_reload, warm_up=warm_up, failed=failed))
        if status.error is not None:  # the store's latest did not load; the served model stays
            served = f"; the previous model is still served ({status.model_tag})"
            raise ApiError(ErrorCode.MODEL_NOT_READY, status.error + (served if status.model_loaded else ""))
        return status
