"""The error shape: every refusal, and every foreign error answer (404, 405, BentoML's own), is
``{success: false, error: {code, message, details?}, request_id, ...}`` with a stable code, no internals."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from nailseg.api.guard.asgi import Message, Receive, Scope, Send, state
from nailseg.api.schemas import ErrorDetail, ErrorResponse, ModelInfoBrief
from nailseg.errors import ErrorCode

INFRA_PATHS = ("/readyz", "/livez", "/healthz", "/metrics")  # BentoML's own answers there stay as they are
_STATUS_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED, 413: ErrorCode.BODY_TOO_LARGE,
                 415: ErrorCode.UNSUPPORTED_MEDIA_TYPE, 503: ErrorCode.RUNNER_UNAVAILABLE}


PROTOCOL_PREFIX = "/v2"  # Open Inference Protocol paths: its error shape, {"error": "<message>"}


def protocol_error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def speaks_protocol(scope: Scope) -> bool:
    path = scope["path"]
    return path == PROTOCOL_PREFIX or path.startswith(PROTOCOL_PREFIX + "/")


class Refusals:
    """Writes error answers for the guard's layers (the model brief comes from the running service), in
    our shape, or in the Open Inference Protocol's on its paths."""

    def __init__(self, model_info: Callable[[], ModelInfoBrief | None]):
        self.model_info = model_info

    def body(self, scope: Scope, code: ErrorCode, message: str, details: list[dict] | None = None) -> bytes:
        if speaks_protocol(scope):
            return protocol_error(message)
        s = state(scope)
        started = s.get("started", time.perf_counter())
        return ErrorResponse(
            error=ErrorDetail(code=code.value, message=message, details=details),
            request_id=s.get("request_id", ""),
            processing_time_ms=round((time.perf_counter() - started) * 1000, 3),
            model_info=self.model_info(),
        ).model_dump_json(exclude_none=True).encode()

    async def send(self, scope: Scope, send: Send, code: ErrorCode, message: str, details: list[dict] | None = None,
                   headers: list[tuple[bytes, bytes]] = ()) -> None:
        body = self.body(scope, code, message, details)
        await send({"type": "http.response.start", "status": code.status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})


class ErrorShape:
    """Turns error answers (status >= 400) not in our shape into ours; passes everything else through."""

    def __init__(self, app, *, refusals: Refusals):
        self.app = app
        self.refusals = refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(INFRA_PATHS):
            return await self.app(scope, receive, send)
        held: Message | None = None
        chunks: list[bytes] = []

        async def shape(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held = message  # until the body is complete
                return
            if message["type"] == "http.response.body" and held is not None:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await self._send_shaped(scope, send, held, b"".join(chunks))
                return
            await send(message)

        await self.app(scope, receive, shape)

    async def _send_shaped(self, scope: Scope, send: Send, start: Message, body: bytes) -> None:
        status = start["status"]
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if speaks_protocol(scope):
            ours = isinstance(data, dict)  # the protocol routes answer only JSON objects of their own
        else:
            ours = isinstance(data, dict) and data.get("success") is False and "error" in data
        if not ours:
            code = _STATUS_CODES.get(status) or (ErrorCode.INTERNAL_ERROR if status >= 500 else ErrorCode.INVALID_REQUEST)
            body = self.refusals.body(scope, code, _foreign_message(data, status))
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length", b"content-type")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _foreign_message(data: Any, status: int) -> str:
    if status >= 500:
        return "the server could not complete the request; see the server log for this request id"
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # BentoML's InvalidArgument body is a one-element list
    if isinstance(data, dict):
        text = data.get("error") or data.get("detail")
        if isinstance(text, str):
            return text[:300]
    return {404: "no such endpoint", 405: "method not allowed on this endpoint"}.get(status, f"HTTP {status}")
