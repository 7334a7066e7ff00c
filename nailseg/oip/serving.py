"""The Open Inference Protocol's handlers (KServe v2 REST), served by a Starlette app mounted at /v2
(nailseg/api/endpoints.py binds them to their routes); each is given the API's collaborators.

Their paths are in the route table (nailseg/api/routes.py); the codec is the rest of nailseg/oip/. The guard
reads and parses an infer body once (``parse_infer``), so its keys, limits and metrics are the rest of the
service's, and its refusals are the protocol's ``{"error": "..."}`` (nailseg/api/guard/error_shape.py).
The images go through the Segmenter like every other image endpoint's (``Segmenter.tensors``), so a
`mask` output is byte for byte `/mask`'s PNG for the same photo and threshold.
"""

from __future__ import annotations

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response

from nailseg.api.deps import Call, Deps
from nailseg.api.guard.asgi import Scope, header
from nailseg.api.guard.validation import InvalidBody
from nailseg.api.openapi import project_version
from nailseg.api.routes import MODEL
from nailseg.errors import ApiError, ErrorCode
from nailseg.images import pipeline, postprocess
from nailseg.images.codec import encode_png
from nailseg.oip import decoding, encoding, metadata
from nailseg.oip.types import HEADER_LENGTH, NAIL_COUNT, PROBABILITY, InferRequest, OipError, error_body

SERVER_NAME = "nail-segmentation"
PLATFORM = "nailseg_unet"
_STATUS_CODES = {400: ErrorCode.INVALID_TENSOR, 413: ErrorCode.BODY_TOO_LARGE, 415: ErrorCode.UNSUPPORTED_MEDIA_TYPE}


def parse_infer(max_body_bytes: int, max_images: int, max_pixels: int):
    """The guard's parser for infer bodies: InvalidBody (with the protocol's status) for a bad one."""
    def parse(body: bytes, scope: Scope) -> InferRequest:
        try:
            coding = header(scope, b"content-encoding")
            body = decoding.decode_content_encoding(body, coding.decode("latin-1") if coding else None, max_body_bytes)
            length = header(scope, HEADER_LENGTH.lower().encode())
            return decoding.parse_infer_request(body, length.decode("latin-1") if length is not None else None,
                                                max_images=max_images, max_pixels=max_pixels)
        except OipError as e:
            raise InvalidBody(_STATUS_CODES.get(e.status, ErrorCode.INVALID_TENSOR), e.message) from None
    return parse


def _json(body, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def error(message: str, status: int) -> Response:
    """The protocol's error answer."""
    return Response(error_body(message), status_code=status, media_type="application/json")


async def _served_version(deps: Deps, request: Request) -> str:
    """The served store entry's version; 404 (the protocol's error) for another one asked for by path."""
    status = await deps.runner_client.model_status()
    served = status.model_tag.split(":", 1)[-1]
    asked = request.path_params.get("version")
    if asked is not None and asked != served:
        raise ApiError(ErrorCode.NOT_FOUND, f"model {MODEL} has no version {asked!r}; it serves {served!r}")
    return served


async def server_metadata(deps: Deps, request: Request) -> Response:
    return _json(metadata.server_metadata(SERVER_NAME, project_version()))


async def live(deps: Deps, request: Request) -> Response:
    alive = deps.alive()
    return _json(metadata.live_body(alive), 200 if alive else 503)


async def ready(deps: Deps, request: Request) -> Response:
    ok = await deps.model_ready()
    return _json(metadata.ready_body(ok), 200 if ok else 503)


async def model_metadata(deps: Deps, request: Request) -> Response:
    served = await _served_version(deps, request)
    size = tuple(deps.runner_client.status.model.preprocessing.image_size)
    return _json(metadata.model_metadata(MODEL, [served], PLATFORM, model_size=size,
                                    max_batch_images=deps.settings.limits.max_batch_images))


async def model_ready(deps: Deps, request: Request) -> Response:
    await _served_version(deps, request)
    ok = await deps.model_ready()
    return _json(metadata.model_ready_body(MODEL, ok), 200 if ok else 503)


async def model_config(deps: Deps, request: Request) -> Response:
    await _served_version(deps, request)
    size = tuple(deps.runner_client.status.model.preprocessing.image_size)
    return _json(metadata.model_config(MODEL, PLATFORM, max_batch_images=deps.settings.limits.max_batch_images,
                                  model_size=size))


async def infer(deps: Deps, http: Request, request: InferRequest, call: Call) -> Response:
    served = await _served_version(deps, http)
    segmenter = deps.segmenter
    prepared, probs, cut = await segmenter.tensors(request)

    def outputs():
        masks = [pipeline.mask_for(p, prob, cut)[1] for p, prob in zip(prepared, probs)]
        if request.images is not None:
            mask = [encode_png(m) for m in masks]
        else:
            mask = np.stack(masks) // 255
        counts = [len(postprocess.contours(m)) for m in masks] if request.wants(NAIL_COUNT) else None
        probability = np.stack(probs) if request.wants(PROBABILITY) else None
        return encoding.encode_infer_response(request, model_name=MODEL, model_version=served, mask=mask,
                                              probability=probability, nail_count=counts)

    answer = await segmenter.off_loop(outputs)
    segmenter.done(call.request_id, "v2-infer", call.started, request.count)
    return Response(answer.body, headers=answer.headers)
