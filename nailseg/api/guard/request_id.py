"""Request ids: every request gets one (the client's ``X-Request-ID`` if it is sane, else a new one),
passed on to the handlers in the request headers, named in error logs, and sent back on every answer."""

from __future__ import annotations

import re
import time
import uuid

from nailseg import logs
from nailseg.api.guard.asgi import Receive, Scope, Send, state

HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"^[\w.:-]{1,128}$")


class RequestIds:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = next((v for k, v in scope["headers"] if k == HEADER), b"")
        request_id = given.decode() if _SANE_ID.match(given) else str(uuid.uuid4())
        logs.request_id.set(request_id)  # error logs in this request name it
        scope = {**scope, "headers": [*((k, v) for k, v in scope["headers"] if k != HEADER),
                                      (HEADER, request_id.encode())]}
        state(scope).update(request_id=request_id, started=time.perf_counter())
        header = (HEADER, request_id.encode())

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        await self.app(scope, receive, send_with_id)
