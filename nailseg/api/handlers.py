"""The handlers of the POST endpoints under the prefix: each is given its collaborators, its route's
validated request model and the call (nailseg/api/deps.py), and a multipart one the uploaded photo too.

Their signatures are the contract: nailseg/api/endpoints.py binds each route to its handler and builds
BentoML's API method from the route's model (tests/test_endpoints.py checks that every handler takes
exactly its route's model). The guard has already validated the model; the handler returns its answer
model, or a ready Response for a picture (nailseg/api/answers.py fills the fields every answer carries).
"""

from __future__ import annotations

import time
from pathlib import Path

from starlette.responses import Response

from nailseg.api.deps import Call, Deps
from nailseg.api.schemas import (
    InitializeRequest,
    InitializeResponse,
    MaskRequest,
    SegmentBatchRequest,
    SegmentBatchResponse,
    SegmentOptions,
    SegmentRequest,
    SegmentResponse,
    TryOnRequest,
)


async def segment(deps: Deps, request: SegmentRequest, call: Call) -> SegmentResponse:
    answer = await deps.segmenter.segment(request.image_data, request)
    deps.segmenter.done(call.request_id, "segment", call.started)
    return answer


async def segment_image(deps: Deps, image: Path, request: SegmentOptions, call: Call) -> SegmentResponse:
    answer = await deps.segmenter.segment(image, request)
    deps.segmenter.done(call.request_id, "segment-image", call.started)
    return answer


async def mask(deps: Deps, image: Path, request: MaskRequest, call: Call) -> Response:
    png = await deps.segmenter.mask_png(image, request)
    deps.segmenter.done(call.request_id, "mask", call.started)
    return Response(png, media_type="image/png")


async def tryon(deps: Deps, image: Path, request: TryOnRequest, call: Call) -> Response:
    picture = await deps.segmenter.tryon(image, request)
    deps.segmenter.done(call.request_id, "tryon", call.started)
    return Response(picture, media_type=f"image/{request.output_format}")


async def segment_batch(deps: Deps, request: SegmentBatchRequest, call: Call) -> SegmentBatchResponse:
    answer = await deps.segmenter.batch(request, call.request_id, call.started)
    deps.segmenter.done(call.request_id, "segment-batch", call.started, sum(r.success for r in answer.results))
    return answer


async def initialize(deps: Deps, request: InitializeRequest, call: Call) -> InitializeResponse:
    status = await deps.runner_client.reload(request.force_reload, request.warm_up)
    elapsed = (time.perf_counter() - call.started) * 1000
    return InitializeResponse(success=True, message="U-Net service initialized successfully",
                              initialization_time_ms=round(elapsed, 3), service_ready=status.model_loaded,
                              model_tag=status.model_tag)
