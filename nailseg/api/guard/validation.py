"""Request bodies, checked before BentoML sees them: the size limit (413, before or while reading),
the media type (415), JSON bodies against their route's request model and multipart forms against their
options model (400/422, with field details, in our error shape).

A JSON body is parsed once, here: the validated request (a form's options too) goes to the handler
through the request's state (``validated_request``, which nailseg/api/endpoints.py hands to each
handler), and BentoML's own parser is handed an empty object, so the body is not parsed a second time.
"""

from __future__ import annotations

from typing import Any, Callable, Container

from pydantic import BaseModel, ValidationError

from nailseg.api.guard.asgi import Message, Receive, Scope, Send, header, state
from nailseg.api.guard.error_shape import Refusals
from nailseg.api.guard.forms import check_form
from nailseg.errors import ErrorCode

_EMPTY_OBJECT = b"{}"


class _BodyTooLarge(Exception):
    pass


class InvalidBody(Exception):
    """A body a parser refuses: its error code (and so its status) and what to tell the client."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def validated_request(scope: Scope) -> BaseModel:
    """The request model (a JSON body, a form's options, an infer body) validated for this request."""
    return state(scope)["body"]


class Validation:
    def __init__(self, app, *, refusals: Refusals, max_body_bytes: int, validated: dict[str, type[BaseModel]],
                 forms: dict[str, type[BaseModel]] | None = None, infer: Container[str] = (),
                 parse_infer: Callable[[bytes, Scope], Any] | None = None):
        self.app, self.refusals = app, refusals
        self.max_body_bytes = max_body_bytes
        self.validated, self.forms = validated, forms or {}
        self.infer, self.parse_infer = infer, parse_infer  # Open Inference Protocol infer paths, and their parser

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        if self.parse_infer is not None and scope["path"] in self.infer:
            return await self._infer(scope, receive, send)
        schema, form = self.validated.get(scope["path"]), self.forms.get(scope["path"])
        if schema is None and form is None:
            return await self.app(scope, receive, send)
        problem, body = await self._read(scope, receive, _json_media if schema is not None else _form_media)
        if problem is None and schema is not None:
            if not body.strip() and not any(f.is_required() for f in schema.model_fields.values()):
                body = _EMPTY_OBJECT  # no body where every field has a default: the defaults
            problem, parsed = _parse(body, schema)
            if problem is None:
                s = state(scope)
                s["body"] = parsed
                s["images"] = len(parsed.images) if isinstance(getattr(parsed, "images", None), list) else 1
                body = _EMPTY_OBJECT
                scope["headers"] = [*((k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")),
                                    (b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]
        elif problem is None:
            problem, options = await check_form(body, scope["headers"], form)
            state(scope)["body"] = options
        if problem is not None:
            return await self.refusals.send(scope, send, *problem)
        await self.app(scope, _replay(body), send)

    async def _infer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An infer body: read up to the size limit, parsed (``parse_infer`` raises ``InvalidBody``)."""
        problem, body = await self._read(scope, receive, lambda media: None)
        if problem is None:
            try:
                parsed = self.parse_infer(body, scope)
            except InvalidBody as e:
                return await self.refusals.send(scope, send, e.code, e.message)
            s = state(scope)
            s["body"], s["images"] = parsed, parsed.count
            body = b""
        else:
            return await self.refusals.send(scope, send, *problem)
        await self.app(scope, _replay(body), send)

    async def _read(self, scope: Scope, receive: Receive, wrong_media) -> tuple[tuple | None, bytes]:
        """(problem, body): the body read up to the size limit, unless its length or media type is refused."""
        length = header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return (ErrorCode.BODY_TOO_LARGE, f"body is {int(length)} bytes; the limit is {self.max_body_bytes}"), b""
        media = (header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
        if (refusal := wrong_media(media)) is not None:
            return (ErrorCode.UNSUPPORTED_MEDIA_TYPE, refusal), b""
        try:
            return None, await _read_body(receive, self.max_body_bytes)
        except _BodyTooLarge:
            return (ErrorCode.BODY_TOO_LARGE, f"body exceeds the limit of {self.max_body_bytes} bytes"), b""


def _json_media(media: bytes) -> str | None:
    if media.startswith(b"multipart/") or media == b"application/vnd.bentoml+pickle":
        return f"send a JSON body, not {media.decode(errors='replace')}"
    return None


def _form_media(media: bytes) -> str | None:
    if media == b"multipart/form-data":
        return None
    return "send multipart/form-data with the photo as a file part named 'image'"


def _parse(body: bytes, schema: type[BaseModel]) -> tuple[tuple | None, BaseModel | None]:
    try:
        return None, schema.model_validate_json(body)  # pydantic's own parser: ~6x faster than json.loads + validate
    except ValidationError as e:
        errors = e.errors(include_url=False, include_input=False, include_context=False)
    if errors[0]["type"] == "json_invalid":
        return (ErrorCode.INVALID_JSON, f"body is not valid JSON ({errors[0]['msg']})"), None
    if errors[0]["type"] == "model_type" and not errors[0]["loc"]:
        return (ErrorCode.INVALID_JSON, "body must be a JSON object"), None
    details = [{"field": ".".join(str(p) for p in err["loc"]) or "body", "problem": err["msg"]} for err in errors]
    return (ErrorCode.INVALID_REQUEST, "; ".join(f"{d['field']}: {d['problem']}" for d in details[:3]), details), None


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
