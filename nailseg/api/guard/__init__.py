"""ASGI middleware in front of the API: request ids, keys, limits, request validation, error shape.

- Every response carries ``X-Request-ID`` (the client's, if it sent a sane one).
- With keys configured, a request needs a valid key (401/403, ``nailseg.security``); each client
  is rate limited (429) and images in flight are capped (503 OVERLOADED, ``nailseg.admission``).
- POST bodies over the limit get 413 before they are read (Content-Length) or as soon as the
  limit is passed (chunked uploads).
- JSON bodies of the validated routes are parsed and checked against their pydantic models
  here, so a bad request gets our error body (code, message, field details), not BentoML's.
- Multipart bodies of the upload routes (``forms``) are checked the same way (nailseg/api/guard/forms.py).
- Any other error response (404, 405, BentoML's own) is rewritten into the same error shape,
  without internals.
- ``KnownPathsOnly`` (outermost, in front of BentoML's own metrics middleware): a path no route
  serves is renamed before anything sees it, so unknown paths add no metric series and a
  trailing slash is never redirected (Starlette's redirect_slashes) to a client-supplied host.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from typing import Any, Awaitable, Callable

from pydantic import BaseModel, ValidationError
from starlette.routing import BaseRoute, Match, Mount
from starlette.staticfiles import StaticFiles

from nailseg import logs as reqlog
from nailseg.api.guard.auth import AccessPolicy, Refusal
from nailseg.api.guard.forms import check_form
from nailseg.api.guard.limits import InflightImages, RateLimiter
from nailseg.api.schemas import ErrorDetail, ErrorResponse, ModelInfoBrief
from nailseg.errors import ErrorCode

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"^[\w.:-]{1,128}$")
INFRA_PATHS = ("/readyz", "/livez", "/healthz", "/metrics")
UNMATCHED_PATH = "/__unmatched__"  # what every path that no route serves is called past KnownPathsOnly
_STATUS_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED, 413: ErrorCode.BODY_TOO_LARGE,
                 415: ErrorCode.UNSUPPORTED_MEDIA_TYPE, 503: ErrorCode.RUNNER_UNAVAILABLE}


class _BodyTooLarge(Exception):
    pass


class RequestGuard:
    def __init__(self, app, *, max_body_bytes: int, validated: dict[str, type[BaseModel]],
                 model_info: Callable[[], ModelInfoBrief | None], forms: dict[str, type[BaseModel]] | None = None,
                 access: AccessPolicy | None = None, rate_limit: RateLimiter | None = None,
                 inflight: InflightImages | None = None, image_paths: frozenset[str] = frozenset()):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.validated = validated
        self.forms = forms or {}
        self.model_info = model_info
        self.access = access
        self.rate_limit = rate_limit
        self.inflight = inflight
        self.image_paths = image_paths  # POST paths whose images count against ``inflight``

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        headers = [(k, v) for k, v in scope["headers"] if k != REQUEST_ID_HEADER]
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER, b"")
        request_id = given.decode() if _SANE_ID.match(given) else str(uuid.uuid4())
        reqlog.request_id.set(request_id)  # error logs in this request name it
        scope = {**scope, "headers": [*headers, (REQUEST_ID_HEADER, request_id.encode())]}

        def error(code: ErrorCode, message: str, details: list[dict] | None = None) -> ErrorResponse:
            return ErrorResponse(
                error=ErrorDetail(code=code.value, message=message, details=details),
                request_id=request_id,
                processing_time_ms=round((time.perf_counter() - started) * 1000, 3),
                model_info=self.model_info(),
            )

        async def refuse(code: ErrorCode, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
            await _send_json(send, code.status, error(code, message), request_id, headers)

        path = scope["path"]
        client = _client_address(scope)
        if self.access is not None:
            caller = self.access.check(path, dict(scope["headers"]))
            if isinstance(caller, Refusal):
                return await refuse(caller.code, caller.message, [(b"www-authenticate", b'Bearer realm="unet"')]
                                    if caller.code is ErrorCode.UNAUTHORIZED else [])
            client = caller.key_id or client
        if self.rate_limit is not None and not (self.access and path in self.access.public_paths):
            if wait := self.rate_limit.acquire(client):
                return await refuse(ErrorCode.RATE_LIMITED, f"too many requests; retry in {wait} s",
                                    [(b"retry-after", str(wait).encode())])
        counted = self.inflight is not None and scope["method"] == "POST" and path in self.image_paths
        if counted and self.inflight.full():  # refuse before reading the body
            return await refuse(*_overloaded(self.inflight))

        images = 1
        schema = self.validated.get(path) if scope["method"] == "POST" else None
        form = self.forms.get(path) if scope["method"] == "POST" else None
        if schema is not None or form is not None:
            problem, body, parsed = await (self._read_and_validate(scope, receive, schema) if schema is not None
                                           else self._read_and_check_form(scope, receive, form))
            if problem is not None:
                return await _send_json(send, problem[0].status, error(*problem), request_id)
            receive = _replay(body)
        if schema is not None:
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope["headers"].append((b"content-type", b"application/json"))
            images = len(parsed.images) if isinstance(getattr(parsed, "images", None), list) else 1

        if counted and not self.inflight.try_acquire(images):
            return await refuse(*_overloaded(self.inflight))
        try:
            await self.app(scope, receive, _ErrorShaper(send, request_id, error, path))
        finally:
            if counted:
                self.inflight.release(images)

    async def _read_checked(self, scope: Scope, receive: Receive, wrong_media: Callable[[bytes], str | None]):
        """(problem, body): the body read up to the size limit, unless its length or media type is refused."""
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return (ErrorCode.BODY_TOO_LARGE,
                    f"body is {int(length)} bytes; the limit is {self.max_body_bytes}"), b""
        media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if (refusal := wrong_media(media)) is not None:
            return (ErrorCode.UNSUPPORTED_MEDIA_TYPE, refusal), b""
        try:
            return None, await _read_body(receive, self.max_body_bytes)
        except _BodyTooLarge:
            return (ErrorCode.BODY_TOO_LARGE, f"body exceeds the limit of {self.max_body_bytes} bytes"), b""

    async def _read_and_check_form(self, scope: Scope, receive: Receive, form: type[BaseModel]):
        problem, body = await self._read_checked(scope, receive, lambda media: None if media == b"multipart/form-data"
                                                 else "send multipart/form-data with the photo as a file part "
                                                      "named 'image'")
        if problem is None:
            problem = await check_form(body, scope["headers"], form)
        return problem, body, None

    async def _read_and_validate(self, scope: Scope, receive: Receive, schema: type[BaseModel]):
        problem, body = await self._read_checked(
            scope, receive, lambda media: f"send a JSON body, not {media.decode(errors='replace')}"
            if media.startswith(b"multipart/") or media == b"application/vnd.bentoml+pickle" else None)
        if problem is not None:
            return problem, b"", None
        try:
            parsed = schema.model_validate_json(body)  # pydantic's own parser: ~6x faster than json.loads + validate
        except ValidationError as e:
            errors = e.errors(include_url=False, include_input=False, include_context=False)
            if errors[0]["type"] == "json_invalid":
                return (ErrorCode.INVALID_JSON, f"body is not valid JSON ({errors[0]['msg']})"), b"", None
            if errors[0]["type"] == "model_type" and not errors[0]["loc"]:
                return (ErrorCode.INVALID_JSON, "body must be a JSON object"), b"", None
            details = [{"field": ".".join(str(p) for p in err["loc"]) or "body", "problem": err["msg"]}
                       for err in errors]
            summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details[:3])
            return (ErrorCode.INVALID_REQUEST, summary, details), b"", None
        return None, body, parsed


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:unknown"


def _overloaded(inflight: InflightImages) -> tuple[ErrorCode, str, list[tuple[bytes, bytes]]]:
    return (ErrorCode.OVERLOADED, f"the service is at its limit of {inflight.limit} images in flight; retry shortly",
            [(b"retry-after", str(inflight.RETRY_AFTER_S).encode())])


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _send_json(send: Send, status: int, payload: BaseModel, request_id: str,
                     headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = payload.model_dump_json(exclude_none=True).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER, request_id.encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class _ErrorShaper:
    """Adds the request id header; turns foreign error bodies (status >= 400) into ours."""

    def __init__(self, send: Send, request_id: str, error, path: str):
        self.send, self.request_id, self.error = send, request_id, error
        self.rewrite = not path.startswith(INFRA_PATHS)
        self.start: Message | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER]
            message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, self.request_id.encode())]}
            if message["status"] >= 400 and self.rewrite:
                self.start = message  # hold until the body is complete
                return
            return await self.send(message)
        if message["type"] == "http.response.body" and self.start is not None:
            self.chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            return await self._send_rewritten()
        return await self.send(message)

    async def _send_rewritten(self) -> None:
        status = self.start["status"]
        body = b"".join(self.chunks)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("success") is False and "error" in data:
            new_body = body  # already ours
        else:
            code = _STATUS_CODES.get(status) or (ErrorCode.INTERNAL_ERROR if status >= 500 else ErrorCode.INVALID_REQUEST)
            message = _foreign_message(data, status)
            new_body = self.error(code, message).model_dump_json(exclude_none=True).encode()
        headers = [(k, v) for k, v in self.start["headers"] if k.lower() not in (b"content-length", b"content-type")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(new_body)).encode())]
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": new_body})


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


# ---- unknown paths: outside everything BentoML puts in front of the routes -----------------

def serves(routes: list[BaseRoute], scope: Scope) -> bool:
    """Whether a route (through mounted apps, and static files that exist) serves this path."""
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if not isinstance(route, Mount):
            return True  # FULL, or PARTIAL: the path exists, the method is wrong (405)
        inner = {**scope, **child}
        if isinstance(route.app, StaticFiles):
            _, stat = route.app.lookup_path(route.app.get_path(inner))
            if stat is not None:
                return True
        elif hasattr(route.app, "routes"):  # a Starlette/FastAPI app or router
            if serves(route.app.routes, inner):
                return True
        else:
            return True  # an opaque ASGI app: it decides
    return False


class KnownPathsOnly:
    """Renames a request for a path that no route serves to ``UNMATCHED_PATH`` (then: 404).

    BentoML's metrics middleware labels each request with its raw path, so every random path
    would add series to /metrics; renamed, all of them share one label. Starlette's router never
    sees the original either, so ``/segment/`` (trailing slash) is a 404, not a redirect to the
    ``Host`` the client sent.
    """

    def __init__(self, app):
        self.app = app  # the service's Starlette app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not serves(self.app.router.routes, scope):
            scope = {**scope, "path": UNMATCHED_PATH, "raw_path": UNMATCHED_PATH.encode()}
        await self.app(scope, receive, send)


def serve_known_paths_only() -> None:
    """Put ``KnownPathsOnly`` around every service's ASGI app (BentoML builds it in ``Service.to_asgi``)."""
    from _bentoml_sdk import Service

    original = Service.to_asgi
    if getattr(original, "known_paths_only", False):
        return

    @functools.wraps(original)
    def to_asgi(self, *args, **kwargs):
        return KnownPathsOnly(original(self, *args, **kwargs))

    to_asgi.known_paths_only = True
    Service.to_asgi = to_asgi
