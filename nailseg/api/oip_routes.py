"""The Open Inference Protocol's routes (KServe v2 REST): a Starlette app that service.py mounts at /v2.

Their paths are in the route table (nailseg/api/routes.py); the codec is nailseg/api/oip.py. The guard
reads and parses an infer body once (``parse_infer``), so its keys, limits and metrics are the rest of the
service's, and its refusals are the protocol's ``{"error": "..."}`` (nailseg/api/guard/errors.py).
Photos go through the same decode and resize as `/mask`, in runner-sized chunks the batcher merges with
other requests, so a `mask` output is byte for byte `/mask`'s PNG for the same photo and threshold.
"""

from __future__ import annotations

import asyncio

import bentoml
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nailseg import metrics
from nailseg.api import debug_outputs, oip
from nailseg.api.guard import started
from nailseg.api.guard.asgi import Scope, header
from nailseg.api.guard.validation import InvalidBody, validated_request
from nailseg.api.openapi import project_version
from nailseg.api.routes import MODEL, OIP_PREFIX, ROUTES
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


def _error(message: str, status: int) -> Response:
    return Response(oip.error_body(message), status_code=status, media_type="application/json")


async def _served_version(request: Request) -> str:
    """The served store entry's version; 404 (the protocol's error) for another one asked for by path."""
    svc = bentoml.get_current_service()
    status = await svc.runner_client.model_status()
    served = status.model_tag.split(":", 1)[-1]
    asked = request.path_params.get("version")
    if asked is not None and asked != served:
        raise ApiError(ErrorCode.NOT_FOUND, f"model {MODEL} has no version {asked!r}; it serves {served!r}")
    return served


async def server_metadata(request: Request) -> Response:
    return _json(oip.server_metadata(SERVER_NAME, project_version()))


async def live(request: Request) -> Response:
    alive = await bentoml.get_current_service().__is_alive__()
    return _json(oip.live_body(alive), 200 if alive else 503)


async def _ready() -> bool:
    svc = bentoml.get_current_service()
    if not await svc.__is_ready__():
        return False
    try:
        await svc.runner_client.model_status()
    except ApiError:
        return False
    return True


async def ready(request: Request) -> Response:
    ok = await _ready()
    return _json(oip.ready_body(ok), 200 if ok else 503)


async def model_metadata(request: Request) -> Response:
    svc = bentoml.get_current_service()
    served = await _served_version(request)
    size = tuple(svc.runner_client.status.model.preprocessing.image_size)
    return _json(oip.model_metadata(MODEL, [served], PLATFORM, model_size=size,
                                    max_batch_images=svc.settings.limits.max_batch_images))


async def model_ready(request: Request) -> Response:
    await _served_version(request)
    ok = await _ready()
    return _json(oip.model_ready_body(MODEL, ok), 200 if ok else 503)


async def model_config(request: Request) -> Response:
    svc = bentoml.get_current_service()
    await _served_version(request)
    size = tuple(svc.runner_client.status.model.preprocessing.image_size)
    return _json(oip.model_config(MODEL, PLATFORM, max_batch_images=svc.settings.limits.max_batch_images,
                                  model_size=size))


async def infer(request: Request) -> Response:
    svc = bentoml.get_current_service()
    served = await _served_version(request)
    req: oip.InferRequest = validated_request(request.scope)
    work = svc.work
    cut = req.threshold if req.threshold is not None else svc.settings.inference.threshold
    prep = svc.runner_client.status.model.preprocessing
    if req.images is not None:
        with metrics.get().timed("decode"):
            prepared = await asyncio.to_thread(pipeline.prepare_many, req.images, prep,
                                               svc.settings.limits.max_image_pixels, svc.settings.limits.max_batch_pixels)
        bad = next(((i, p) for i, p in enumerate(prepared) if isinstance(p, ApiError)), None)
        if bad is not None:
            raise ApiError(bad[1].code, f"image {bad[0]}: {bad[1].message}")
    else:
        prepared = [pipeline.PreparedImage(size=px.shape[:2], model_input=resize_to_model(px, prep.image_size), raw=b"")
                    for px in req.pixels]
    probs = await work.infer(prepared)
    debug_outputs.keep(prepared, probs, cut, indexes=range(len(prepared)))  # photos only: pixels have none

    def outputs():
        masks = [pipeline.mask_for(p, prob, cut)[1] for p, prob in zip(prepared, probs)]
        if req.images is not None:
            mask = [encode_png(m) for m in masks]
        else:
            mask = np.stack(masks) // 255
        counts = [len(postprocess.contours(m)) for m in masks] if req.wants(oip.NAIL_COUNT) else None
        probability = np.stack(probs) if req.wants(oip.PROBABILITY) else None
        return oip.encode_infer_response(req, model_name=MODEL, model_version=served, mask=mask,
                                         probability=probability, nail_count=counts)

    answer = await work.encode(outputs)
    work.done(request.headers.get("x-request-id", ""), "v2-infer", started(request.scope), req.count)
    return Response(answer.body, headers=answer.headers)


async def _api_error(request: Request, exc: ApiError) -> Response:
    return _error(exc.message, exc.code.status)


_HANDLERS = {
    "v2": server_metadata, "v2-live": live, "v2-ready": ready, "v2-model": model_metadata,
    "v2-model-version": model_metadata, "v2-model-ready": model_ready, "v2-model-version-ready": model_ready,
    "v2-model-config": model_config, "v2-model-version-config": model_config, "v2-infer": infer,
    "v2-model-version-infer": infer,
}
oip_app = Starlette(
    routes=[Route(ROUTES[name].path.removeprefix(OIP_PREFIX) or "/", handler, methods=[ROUTES[name].method])
            for name, handler in _HANDLERS.items()],
    exception_handlers={ApiError: _api_error},
)
