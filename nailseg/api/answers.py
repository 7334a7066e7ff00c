"""How every handler answers: its model as JSON (fields that do not apply left out), or its error.

``answers`` wraps a handler once for all endpoints: it times the request, reads the request id the
guard set, turns an ``ApiError`` into the error shape with its status, and fills the fields every
answer carries (``request_id``, ``model_info``, ``processing_time_ms``). A handler returns its answer
model (or a ready Response, for a PNG), so its return annotation is the truth about its body.
"""

from __future__ import annotations

import functools
import time
from typing import Awaitable, Callable

from pydantic import BaseModel
from starlette.responses import Response

from nailseg.api import jsonbody
from nailseg.api.guard.asgi import state
from nailseg.api.schemas import ErrorDetail, ErrorResponse, ModelInfoBrief
from nailseg.errors import ApiError


def json_response(body: BaseModel, status: int = 200) -> Response:
    """Fields that do not apply (None) are left out: absent, not null."""
    return Response(jsonbody.dump(body), status_code=status, media_type="application/json")


def ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def error_body(e: ApiError, started: float, request_id: str, brief: ModelInfoBrief | None,
               index: int | None = None) -> ErrorResponse:
    return ErrorResponse(error=ErrorDetail(code=e.code.value, message=e.message), index=index,
                         request_id=request_id, processing_time_ms=ms_since(started), model_info=brief)


def answer(body: BaseModel | Response, request_id: str, brief: ModelInfoBrief | None, started: float,
           status: int = 200) -> Response:
    if isinstance(body, Response):
        return body
    given = body.model_fields_set  # what the handler set itself stays
    for name, value in (("request_id", request_id), ("model_info", brief)):
        if name in type(body).model_fields and name not in given:
            setattr(body, name, value)
    if "processing_time_ms" in type(body).model_fields and "processing_time_ms" not in given:
        body.processing_time_ms = ms_since(started)
    return json_response(body, status)


def answers(brief: Callable[[object], ModelInfoBrief | None]):
    """Decorator for a BentoML API method ``(self, ..., ctx) -> answer model``; ``brief(self)`` is the model
    brief every answer carries. BentoML still sees the method's own parameters and annotation."""

    def wrap(handler: Callable[..., Awaitable[BaseModel | Response]]):
        @functools.wraps(handler)
        async def answered(self, *args, ctx, **kwargs) -> Response:
            started = state(ctx.request.scope).get("started") or time.perf_counter()  # when the guard took it
            request_id = ctx.request.headers.get("x-request-id", "")
            try:
                body = await handler(self, *args, ctx=ctx, **kwargs)
                status = 200
            except ApiError as e:
                body, status = error_body(e, started, request_id, brief(self)), e.status
            ctx.response.status_code = status
            return answer(body, request_id, brief(self), started, status)

        return answered

    return wrap
