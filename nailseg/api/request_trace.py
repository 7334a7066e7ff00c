"""Each image request, traced for the debug keys: its stage times and the images it segmented.

``RequestTrace`` is an ASGI layer inside the guard; service.py adds it only when
logging.enable_performance_logging, development.enable_debug_endpoints or save_debug_outputs is on (off,
a request pays nothing for them). For the request it collects, in context variables, the stage times
``metrics.timed`` measures anyway (``metrics.request_stages``) and the images the handlers ``keep``
(nailseg/api/debug_outputs.py); once the answer is sent it logs the perf line, adds the request to the
ring GET /api/unet/debug/requests shows, and hands a 200's images to the debug output writer.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from datetime import datetime, timezone
from typing import Callable, Container

from nailseg import metrics
from nailseg.api import debug_outputs
from nailseg.api.debug_outputs import DebugOutputs, KeptImage
from nailseg.api.guard.asgi import Message, Receive, Scope, Send, state
from nailseg.api.schemas import DebugRequest

log = logging.getLogger("unet.api")
RECENT_REQUESTS = 100  # requests the ring keeps, per API process


class RecentRequests:
    """The last ``size`` image requests (their stage times), oldest dropped first."""

    def __init__(self, size: int = RECENT_REQUESTS):
        self._ring: deque[DebugRequest] = deque(maxlen=size)

    def add(self, request: DebugRequest) -> None:
        self._ring.append(request)

    def newest_first(self) -> list[DebugRequest]:
        return list(reversed(self._ring))


class RequestTrace:
    """ASGI layer: traces the POSTs to the image endpoints (``image_paths``); see the module's docstring."""

    def __init__(self, app, *, image_paths: Container[str], endpoint_of: Callable[[str], str | None],
                 perf_log: bool = False, recent: RecentRequests | None = None, outputs: DebugOutputs | None = None):
        self.app, self.image_paths, self.endpoint_of = app, image_paths, endpoint_of
        self.perf_log, self.recent, self.outputs = perf_log, recent, outputs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.image_paths:
            return await self.app(scope, receive, send)
        received = datetime.now(timezone.utc)
        status = 500  # unless an answer starts

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        images = debug_outputs.collecting() if self.outputs is not None else contextlib.nullcontext([])
        with metrics.request_stages() as stages, images as kept:
            try:
                await self.app(scope, receive, watch)
            finally:
                self._done(scope, received, status, stages, kept)

    def _done(self, scope: Scope, received: datetime, status: int, stages: dict[str, float],
              kept: list[KeptImage]) -> None:
        s = state(scope)
        request_id, endpoint = s.get("request_id", ""), self.endpoint_of(scope["path"]) or scope["path"]
        total_ms = round((time.perf_counter() - s.get("started", time.perf_counter())) * 1000, 3)
        stages_ms = {stage: round(stages[stage] * 1000, 3) for stage in metrics.STAGES if stage in stages}
        if self.perf_log:
            times = "".join(f"{stage}={ms:.1f}ms " for stage, ms in stages_ms.items())
            log.info("perf %s %s %stotal=%.1fms status=%d", request_id, endpoint, times, total_ms, status)
        if self.recent is not None:
            self.recent.add(DebugRequest(request_id=request_id, endpoint=endpoint, status=status,
                                         received_at=received.isoformat(timespec="milliseconds"),
                                         images=s.get("images", 1), stages_ms=stages_ms, total_ms=total_ms))
        if self.outputs is not None and status == 200:
            self.outputs.save(request_id, received, kept)
