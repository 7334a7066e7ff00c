"""The Open Inference Protocol's handlers (KServe v2 REST), served by a Starlette app mounted at /v2
(nailseg/api/endpoints.py binds them to their routes); each is given its collaborators.

Their paths are in the route table (nailseg/api/routes.py); the codec is nailseg/api/oip.py. The guard
reads and parses an infer body once (``parse_infer``), so its keys, limits and metrics are the rest of the
service's, and its refusals are the protocol's ``{"error": "..."}`` (nailseg/api/guard/errors.py).
Photos go through the same decode and resize as `/mask`, in runner-sized chunks the batcher merges with
other requests, so a `mask` output is byte for byte `/mask`'s PNG for the same photo and threshold.
"""

from __future__ import annotations

import asyncio

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from nailseg import metrics
from nailseg.api import debug_outputs, oip
from nailseg.api.guard.asgi import Scope, header
from nailseg.api.deps import Call, Deps
from nailseg.api.guard.validation import InvalidBody
from nailseg.api.openapi import project_version
from nailseg.api.routes import MODEL
from nailseg.errors import ApiError, ErrorCode
from nailseg.images import pipeline, postprocess
from nailseg.images.codec import encode_png
from nailseg.images.resize import resize_to_model

SERVER_NAME = "nail-segmentation"
PLATFORM = "nailseg_unet"
_STATUS_CODES = {400: ErrorCode.INVALID_TENSOR, 413: ErrorCode.BODY_TOO_LARGE, 415: ErrorCode.UNSUPPORTED_MEDIA_TYPE}


def parse_infer(max_body_bytes: int, max_images: int, max_pixels: int):
    """The guard's parser for infer bodies: InvalidBody (with the protocol's status) for a bad one."""
    def parse(body: bytes, scope: Scope) -> oip.InferRequest:
        try:
            encoding = header(scope, b"content-encoding")
            body = oip.decode_content_encoding(body, encoding.decode("latin-1") if encoding else None, max_body_bytes)
            length = header(scope, oip.HEADER_LENGTH.lower().encode())
            return oip.parse_infer_request(body, length.decode("latin-1") if length is not None else None,
                                           max_images=max_images, max_pixels=max_pixels)
        except oip.OipError as e:
            raise InvalidBody(_STATUS_CODES.get(e.status, ErrorCode.INVALID_TENSOR), e.message) from None
    return parse


def _json(body, status: int = 200) -> Response:
    return Response(oip.orjson.dumps(body), status_code=status, media_type="application/json")


def error(message: str, status: int) -> Response:
    """The protocol's error answer."""
    return Response(oip.error_body(message), status_code=status, media_type="application/json")


async def _served_version(deps: Deps, request: Request) -> str:
    """The served store entry's version; 404 (the protocol's error) for another one asked for by path."""
    status = await deps.runner_client.model_status()
    served = status.model_tag.split(":", 1)[-1]
    asked = request.path_params.get("version")
    if asked is not None and asked != served:
        raise ApiError(ErrorCode.NOT_FOUND, f"model {MODEL} has no version {asked!r}; it serves {served!r}")
    return served


async def server_metadata(deps: Deps, request: Request) -> Response:
    return _json(oip.server_metadata(SERVER_NAME, project_version()))


async def live(deps: Deps, request: Request) -> Response:
    alive = deps.alive()
    return _json(oip.live_body(alive), 200 if alive else 503)


async def ready(deps: Deps, request: Request) -> Response:
    ok = await deps.model_ready()
    return _json(oip.ready_body(ok), 200 if ok else 503)


async def model_metadata(deps: Deps, request: Request) -> Response:
    served = await _served_version(deps, request)
    size = tuple(deps.runner_client.status.model.preprocessing.image_size)
    return _json(oip.model_metadata(MODEL, [served], PLATFORM, model_size=size,
                                    max_batch_images=deps.settings.limits.max_batch_images))


async def model_ready(deps: Deps, request: Request) -> Response:
    await _served_version(deps, request)
    ok = await deps.model_ready()
    return _json(oip.model_ready_body(MODEL, ok), 200 if ok else 503)


async def model_config(deps: Deps, request: Request) -> Response:
    await _served_version(deps, request)
    size = tuple(deps.runner_client.status.model.preprocessing.image_size)
    return _json(oip.model_config(MODEL, PLATFORM, max_batch_images=deps.settings.limits.max_batch_images,
                                  model_size=size))


async def infer(deps: Deps, http: Request, request: oip.InferRequest, call: Call) -> Response:
    served = await _served_version(deps, http)
    work = deps.segmenter
    cut = request.threshold if request.threshold is not None else deps.settings.inference.threshold
    prep = deps.runner_client.status.model.preprocessing
    if request.images is not None:
        with metrics.get().timed("decode"):
            prepared = await asyncio.to_thread(pipeline.prepare_many, request.images, prep,
                                               deps.settings.limits.max_image_pixels, deps.settings.limits.max_batch_pixels)
        bad = next(((i, p) for i, p in enumerate(prepared) if isinstance(p, ApiError)), None)
        if bad is not None:
            raise ApiError(bad[1].code, f"image {bad[0]}: {bad[1].message}")
    else:
        prepared = [pipeline.PreparedImage(size=px.shape[:2], model_input=resize_to_model(px, prep.image_size), raw=b"")
                    for px in request.pixels]
    probs = await work.infer(prepared)
    debug_outputs.keep(prepared, probs, cut, indexes=range(len(prepared)))  # photos only: pixels have none

    def outputs():
        masks = [pipeline.mask_for(p, prob, cut)[1] for p, prob in zip(prepared, probs)]
        if request.images is not None:
            mask = [encode_png(m) for m in masks]
        else:
            mask = np.stack(masks) // 255
        counts = [len(postprocess.contours(m)) for m in masks] if request.wants(oip.NAIL_COUNT) else None
        probability = np.stack(probs) if request.wants(oip.PROBABILITY) else None
        return oip.encode_infer_response(request, model_name=MODEL, model_version=served, mask=mask,
                                         probability=probability, nail_count=counts)

    answer = await work.encode(outputs)
    work.done(call.request_id, "v2-infer", call.started, request.count)
    return Response(answer.body, headers=answer.headers)
