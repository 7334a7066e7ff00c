"""How every handler answers: its model as JSON (fields that do not apply left out), or its error.

``answer`` fills the fields every answer carries (``request_id``, ``model_info``, ``processing_time_ms``)
and writes it; ``error_body`` is an ``ApiError`` in the error shape. A handler returns its answer model
(or a ready Response, for a picture), so its return annotation is the truth about its body.
"""

from __future__ import annotations

import time
from pydantic import BaseModel
from starlette.responses import Response

from nailseg.api import jsonbody
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
