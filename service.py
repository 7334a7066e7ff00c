"""The nail segmentation API (../shared/spec/unet_serving_guide.md), served by `bentoml serve .`.

The endpoints and their wiring only: each POST endpoint is a BentoML API whose path comes from the
route table (nailseg/api/routes.py); the GET endpoints are the mounted app of nailseg/api/info.py; the
guard's layers, the metrics and the OpenAPI additions are added from the same table, and the request
trace for the debug keys (nailseg/api/request_trace.py) only when one is on. The work is in
nailseg/api/segmenting.py, and the model runs in the UNetRunner service (runners/unet_runner.py).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Literal

import bentoml
from bentoml.validators import ContentType
from pydantic import Field
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from nailseg import compat, logs, metrics
from nailseg.api import guard
from nailseg.api.answers import answers
from nailseg.api.debug_outputs import DebugOutputs
from nailseg.api.guard.auth import AccessPolicy
from nailseg.api.guard.limits import InflightImages, RateLimiter
from nailseg.api.guard.validation import validated_request
from nailseg.api.info import get_app
from nailseg.api.oip_routes import oip_app, parse_infer
from nailseg.api.openapi import OpenApiDocs
from nailseg.api.request_trace import RecentRequests, RequestTrace
from nailseg.api.routes import OIP_PREFIX, PREFIX, ROUTES, PathSet, endpoint_label
from nailseg.api.runner_client import RunnerClient
from nailseg.api.schemas import (
    BatchImage,
    InitializeResponse,
    MaskFormat,
    MaskRequest,
    ModelInfoBrief,
    SegmentBatchRequest,
    SegmentBatchResponse,
    SegmentOptions,
    SegmentRequest,
    SegmentResponse,
    TryOnRequest,
)
from nailseg.api.segmenting import Segmenter
from nailseg.config import get_settings
from runners.unet_runner import UNetRunner

settings = get_settings()
logging.getLogger("unet").setLevel(settings.logging.level)
logs.install()
compat.apply_service_module()  # `bentoml serve` imports this module in its own process too

# The APIs' parameters carry the request models' own field descriptions and bounds (BentoML's schema and
# its client read them). The guard has already validated a JSON body against its route's model and hands
# it to the handler (validated_request); BentoML's own parser gets an empty object, so a required field
# has a default here only for that parse: the guard's model requires it.
_option = SegmentOptions.model_fields.__getitem__
Threshold = Annotated[float | None, _option("threshold")]
ReturnConfidence = Annotated[bool, _option("return_confidence")]
ReturnContours = Annotated[bool, _option("return_contours")]
ReturnVisualizations = Annotated[bool, _option("return_visualizations")]
ReturnNails = Annotated[bool, _option("return_nails")]
MaskFormatOption = Annotated[MaskFormat, _option("mask_format")]
_tryon = TryOnRequest.model_fields.__getitem__
ImageFile = Annotated[Path, Field(description="the photo: a JPEG, PNG or BMP file (multipart part `image`)")]
PngImage = Annotated[Path, ContentType("image/png")]
answered = answers(lambda svc: svc.work.brief)
development = settings.development  # the serving guide's debug mode: every key off by default
recent_requests = RecentRequests() if development.enable_debug_endpoints else None  # GET /debug/requests
saved_outputs = (DebugOutputs(development.debug_output_dir, development.max_debug_outputs)
                 if development.save_debug_outputs else None)


def _form(model, args: dict):
    """The form fields among an API method's arguments (the guard has already checked them)."""
    return model(**{name: args[name] for name in model.model_fields})


@bentoml.asgi_app(oip_app, path=OIP_PREFIX)
@bentoml.asgi_app(get_app(development.enable_debug_endpoints), path=PREFIX)
@bentoml.service(name="unet_api", workers=settings.api.workers, http={"port": 8001}, traffic={"timeout": 120},
                 tracing=settings.api.bentoml_tracing)
class UNetAPI:
    runner = bentoml.depends(UNetRunner)

    def __init__(self) -> None:
        from nailseg.compat import shutdown

        self.settings = settings
        self.runner_client = RunnerClient(self.runner, settings.health)
        self.work = Segmenter(settings, self.runner_client)
        self.recent_requests = recent_requests
        shutdown.api_stops_accepting_first()

    @property
    def brief(self) -> ModelInfoBrief | None:
        return self.work.brief

    async def __is_ready__(self) -> bool:
        """BentoML's /readyz: 503 at once while the runner is unreachable (then BentoML asks the runner's)."""
        watch = self.runner_client.watch
        watch.start()
        return watch.up or await watch.probe_once()

    async def __is_alive__(self) -> bool:
        """BentoML's /livez: 503 once the runner has been unreachable for health.liveness_runner_timeout_s."""
        self.runner_client.watch.start()
        return self.runner_client.watch.alive

    @bentoml.api(route=ROUTES["segment"].path)
    @answered
    async def segment(self, image_data: Annotated[str, SegmentRequest.model_fields["image_data"]] = "",
                      threshold: Threshold = None, return_confidence: ReturnConfidence = False,
                      return_contours: ReturnContours = False, return_visualizations: ReturnVisualizations = False,
                      return_nails: ReturnNails = False, mask_format: MaskFormatOption = "png",
                      ctx: bentoml.Context = None) -> SegmentResponse:
        """Segment the nails in one image sent as base64 JPEG, PNG or BMP in a JSON body."""
        request: SegmentRequest = validated_request(ctx.request.scope)
        answer = await self.work.segment(request.image_data, request)
        self.work.done(ctx.request.headers.get("x-request-id", ""), "segment", _started(ctx))
        return answer

    @bentoml.api(route=ROUTES["segment-image"].path)
    @answered
    async def segment_image(self, image: ImageFile, threshold: Threshold = None,
                            return_confidence: ReturnConfidence = False, return_contours: ReturnContours = False,
                            return_visualizations: ReturnVisualizations = False, return_nails: ReturnNails = False,
                            mask_format: MaskFormatOption = "png", ctx: bentoml.Context = None) -> SegmentResponse:
        """Segment the nails in an uploaded photo (multipart: file part `image`, options as form fields)."""
        answer = await self.work.segment(image, _form(SegmentOptions, locals()))
        self.work.done(ctx.request.headers.get("x-request-id", ""), "segment-image", _started(ctx))
        return answer

    @bentoml.api(route=ROUTES["mask"].path)
    @answered
    async def mask(self, image: ImageFile, threshold: Threshold = None,
                   overlay: Annotated[bool, MaskRequest.model_fields["overlay"]] = False,
                   ctx: bentoml.Context = None) -> PngImage:
        """An uploaded photo's mask as a PNG (255 = nail), or with overlay=true the photo with the mask over it."""
        png = await self.work.mask_png(image, _form(MaskRequest, locals()))
        self.work.done(ctx.request.headers.get("x-request-id", ""), "mask", _started(ctx))
        return Response(png, media_type="image/png")

    @bentoml.api(route=ROUTES["tryon"].path)
    @answered
    async def tryon(self, image: ImageFile, color: Annotated[str, _tryon("color")] = "#C8143C",
                    opacity: Annotated[float, _tryon("opacity")] = 0.85,
                    finish: Annotated[Literal["gloss", "matte"], _tryon("finish")] = "gloss",
                    threshold: Threshold = None,
                    output_format: Annotated[Literal["png", "jpeg"], _tryon("output_format")] = "png",
                    ctx: bentoml.Context = None) -> PngImage:
        """Nail-polish try-on: the photo at its own size and orientation with its nails painted in `color`."""
        picture = await self.work.tryon(image, _form(TryOnRequest, locals()))
        self.work.done(ctx.request.headers.get("x-request-id", ""), "tryon", _started(ctx))
        return Response(picture, media_type=f"image/{output_format}")

    @bentoml.api(route=ROUTES["segment-batch"].path)
    @answered
    async def segment_batch(self, images: Annotated[list[BatchImage], SegmentBatchRequest.model_fields["images"]] = (),
                            threshold: Threshold = None, return_confidence: ReturnConfidence = False,
                            return_contours: ReturnContours = False,
                            return_visualizations: ReturnVisualizations = False, return_nails: ReturnNails = False,
                            mask_format: MaskFormatOption = "png", ctx: bentoml.Context = None) -> SegmentBatchResponse:
        """Segment several images; a bad image fails only its own entry."""
        request_id = ctx.request.headers.get("x-request-id", "")
        answer = await self.work.batch(validated_request(ctx.request.scope), request_id, _started(ctx))
        self.work.done(request_id, "segment-batch", _started(ctx), sum(r.success for r in answer.results))
        return answer

    @bentoml.api(route=ROUTES["initialize"].path)
    @answered
    async def initialize(self, force_reload: bool = False, warm_up: bool = True,
                         ctx: bentoml.Context = None) -> InitializeResponse:
        """(Re)load the store's latest `unet` model in the runner; requests in flight are not failed."""
        request = validated_request(ctx.request.scope)
        status = await self.runner_client.reload(request.force_reload, request.warm_up)
        elapsed = (time.perf_counter() - _started(ctx)) * 1000
        return InitializeResponse(success=True, message="U-Net service initialized successfully",
                                  initialization_time_ms=round(elapsed, 3), service_ready=status.model_loaded,
                                  model_tag=status.model_tag)


def _started(ctx: bentoml.Context) -> float:
    return guard.started(ctx.request.scope)  # when the guard took the request, as processing_time_ms counts


def _current_brief() -> ModelInfoBrief | None:
    try:
        return bentoml.get_current_service().brief
    except Exception:  # not instantiated yet
        return None


UNetAPI.add_asgi_middleware(metrics.RequestMetrics, endpoint_of=endpoint_label)
if settings.security.cors_origins:  # outside the guard: its 401/429/503 answers carry CORS headers too
    UNetAPI.add_asgi_middleware(CORSMiddleware, allow_origins=settings.security.cors_origins,
                                allow_methods=["GET", "POST"], allow_headers=["Authorization", "X-API-Key",
                                                                              "Content-Type", "X-Request-ID"],
                                expose_headers=["X-Request-ID", "Retry-After"], max_age=600)
for layer, options in guard.layers(
    max_body_bytes=settings.max_body_bytes,
    validated={r.path: r.body for r in ROUTES.values() if r.body is not None},
    forms={r.path: r.form for r in ROUTES.values() if r.form is not None},
    model_info=_current_brief,
    access=AccessPolicy.from_settings(settings.security, admin_paths=[r.path for r in ROUTES.values() if r.admin],
                                      debug_paths=[r.path for r in ROUTES.values() if r.debug]),
    rate_limit=RateLimiter(settings.limits.rate_limit_per_minute, settings.limits.rate_limit_burst),
    inflight=InflightImages(settings.max_inflight_images),
    image_paths=PathSet(lambda route: route.images),
    infer=PathSet(lambda route: route.infer),
    parse_infer=parse_infer(settings.max_body_bytes, settings.limits.max_batch_images, settings.limits.max_image_pixels),
):
    UNetAPI.add_asgi_middleware(layer, **options)
if settings.logging.enable_performance_logging or recent_requests is not None or saved_outputs is not None:
    UNetAPI.add_asgi_middleware(RequestTrace, image_paths=PathSet(lambda route: route.images),
                                endpoint_of=endpoint_label, perf_log=settings.logging.enable_performance_logging,
                                recent=recent_requests, outputs=saved_outputs)
UNetAPI.add_asgi_middleware(OpenApiDocs, max_batch_images=settings.limits.max_batch_images,
                            debug_endpoints=development.enable_debug_endpoints)
