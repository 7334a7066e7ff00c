"""The nail segmentation API (../shared/spec/unet_serving_guide.md), served by `bentoml serve .`.

POST /api/unet/segment, /segment-image, /mask, /segment-batch, /initialize are BentoML APIs; GET
/api/unet/health, /model-info and /demo come from a small mounted Starlette app (nailseg/openapi.py
documents them in /docs.json). The model runs in the UNetRunner service.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from datetime import datetime, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Annotated

import aiohttp
import bentoml
import numpy as np
from bentoml.validators import ContentType
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from nailseg import logs as reqlog
from nailseg import metrics
from nailseg.api import jsonbody
from nailseg.api.guard import RequestGuard, serve_known_paths_only
from nailseg.api.guard.auth import AccessPolicy, shown_checkpoint_path
from nailseg.api.guard.limits import InflightImages, RateLimiter
from nailseg.api.openapi import OpenApiDocs
from nailseg.api.runner_watch import RunnerWatch, unavailable
from nailseg.api.schemas import (
    SUPPORTED_FORMATS,
    BatchImage,
    ErrorDetail,
    ErrorResponse,
    HealthResponse,
    InitializeRequest,
    InitializeResponse,
    MaskFormat,
    MaskRequest,
    ModelInfoBrief,
    ModelInfoResponse,
    RunnerStatus,
    SegmentBatchRequest,
    SegmentBatchResponse,
    SegmentOptions,
    SegmentRequest,
    SegmentResponse,
)
from nailseg.client import demo
from nailseg.compat import shutdown
from nailseg.config import get_settings
from nailseg.errors import ApiError, ErrorCode
from nailseg.images import pipeline
from nailseg.images.pipeline import PreparedImage
from runners.unet_runner import UNetRunner

PREFIX = "/api/unet"
RUNNER_RETRIES = 3  # on a dropped connection
OVERLOAD_BACKOFF_S = 0.1  # first wait after the batcher's 503 "overloaded"; doubles, at most 1 s
OVERLOAD_RETRY_S = 15  # keep retrying those this long: a hot reload slows the runner for seconds on a small CPU
settings = get_settings()
logging.getLogger("unet").setLevel(settings.logging.level)
reqlog.install()
shutdown.arbiter_removes_sockets_last()  # `bentoml serve` imports this module in its own process too
log = logging.getLogger("unet.api")


# The APIs' parameters carry the request models' own field descriptions and bounds (the OpenAPI spec
# shows them; RequestGuard has already validated the body against those models).
_option = SegmentOptions.model_fields.__getitem__
Threshold = Annotated[float | None, _option("threshold")]
ReturnConfidence = Annotated[bool, _option("return_confidence")]
ReturnContours = Annotated[bool, _option("return_contours")]
ReturnVisualizations = Annotated[bool, _option("return_visualizations")]
MaskFormatOption = Annotated[MaskFormat, _option("mask_format")]
ImageFile = Annotated[Path, Field(description="the photo: a JPEG, PNG or BMP file (multipart part `image`)")]
PngImage = Annotated[Path, ContentType("image/png")]


def _options(args: dict) -> SegmentOptions:
    """The segmentation options among an API method's arguments (RequestGuard has already checked them)."""
    return SegmentOptions(**{name: args[name] for name in SegmentOptions.model_fields})


def json_response(body: BaseModel, status: int = 200) -> Response:
    """Fields that do not apply (None) are left out: absent, not null."""
    return Response(jsonbody.dump(body), status_code=status, media_type="application/json")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


# ---- GET endpoints (a mounted app: BentoML APIs are POST only) ------------------------------

async def health(request: Request) -> Response:
    svc: UNetAPI = bentoml.get_current_service()
    started = time.perf_counter()
    try:
        status = await svc.runner_status(refresh=True)
    except ApiError as e:
        status = RunnerStatus(model_loaded=False, device="unknown", gpu_available=False, pools_ready=False,
                              error=e.message, skipped_models=svc.status.skipped_models if svc.status else [])
    healthy = status.model_loaded and status.pools_ready and status.last_health_check_ok is not False
    error = status.error or (None if healthy else "the model's last health check failed")
    body = HealthResponse(
        success=healthy,
        service_healthy=healthy,
        model_loaded=status.model_loaded,
        memory_pools_ready=status.pools_ready,
        gpu_available=status.gpu_available,
        device=status.device,
        last_health_check=(datetime.fromtimestamp(status.last_health_check, timezone.utc).isoformat(timespec="seconds")
                           if status.last_health_check else None),
        memory_usage=status.memory_usage,
        capabilities=svc.capabilities(),
        error=error,
        skipped_models=status.skipped_models,
        model_info=svc.brief,
        request_id=request.headers.get("x-request-id", ""),
        processing_time_ms=_ms(started),
    )
    return json_response(body, 200 if healthy else 503)


async def model_info(request: Request) -> Response:
    svc: UNetAPI = bentoml.get_current_service()
    started = time.perf_counter()
    status = await svc.runner_status()
    m, prep = status.model, status.model.preprocessing
    h, w = prep.image_size
    body = ModelInfoResponse(
        model_tag=status.model_tag,
        model_variant=m.model_variant,
        checkpoint_path=shown_checkpoint_path(m.source_file, svc.settings.security.expose_server_paths),
        checkpoint_sha256=m.source_sha256,
        model_parameters=m.parameters,
        input_shape=[1, m.architecture.input_channels, h, w],
        output_shape=[1, m.architecture.output_channels, h, w],
        device=status.device,
        precision=status.precision,
        precision_reason=status.precision_reason,
        int8_gate=m.int8_gate,
        backend=status.backend,
        test_time_flip=status.test_time_flip,
        architecture_details={"model_type": "AttentionUNet", "base_channels": m.architecture.base_channels,
                              "depth": m.architecture.depth, "use_attention": m.architecture.attention,
                              "batch_norm": m.architecture.batch_norm,
                              "architecture_source": m.architecture_source},
        preprocessing_config={"image_size": [h, w], "normalize": not prep.scale_only, "scale": "x / 255",
                              "mean": list(prep.mean), "std": list(prep.std), "source": m.preprocessing_source},
        training=m.training,
        supported_formats=SUPPORTED_FORMATS,
        skipped_models=status.skipped_models,
        model_info=svc.brief,
        request_id=request.headers.get("x-request-id", ""),
        processing_time_ms=_ms(started),
    )
    return json_response(body)


async def demo_page(request: Request) -> HTMLResponse:
    """A page to try the service in a browser (nailseg/demo.html)."""
    return HTMLResponse(demo.page())


async def _api_error_handler(request: Request, exc: ApiError) -> Response:
    svc: UNetAPI = bentoml.get_current_service()
    body = ErrorResponse(error=ErrorDetail(code=exc.code.value, message=exc.message), model_info=svc.brief,
                         request_id=request.headers.get("x-request-id", ""))
    return json_response(body, exc.status)


get_app = Starlette(
    routes=[Route("/health", health, methods=["GET"]), Route("/model-info", model_info, methods=["GET"]),
            Route("/demo", demo_page, methods=["GET"])],
    exception_handlers={ApiError: _api_error_handler},
)


# ---- the service -------------------------------------------------------------------------

@bentoml.asgi_app(get_app, path=PREFIX)
@bentoml.service(
    name="unet_api",
    http={"port": 8001},
    traffic={"timeout": 120},
)
class UNetAPI:
    runner = bentoml.depends(UNetRunner)

    def __init__(self) -> None:
        self.settings = settings
        self.status: RunnerStatus | None = None  # the runner's last report (model, preprocessing, device)
        self.watch = RunnerWatch(self._probe_runner, settings.health)
        self._probe_session = None
        shutdown.api_stops_accepting_first()

    async def _probe_runner(self, timeout: float) -> bool:
        """The runner process answers its /livez (its model state comes from ``status``)."""
        from _bentoml_impl.client import RemoteProxy
        from _bentoml_impl.client.proxy2 import SessionManager

        if not isinstance(self.runner, RemoteProxy):
            return True  # in-process (development) runner
        if self._probe_session is None:
            self._probe_session = SessionManager(url=self.runner.to_async.url, timeout=timeout, headers={},
                                                 max_age=1e12, max_requests=10**12)
        session = await self._probe_session.get_session()
        async with session.get("/livez") as resp:
            await resp.read()
            return resp.status == 200

    async def __is_ready__(self) -> bool:
        """BentoML's /readyz: 503 at once while the runner is unreachable (then BentoML asks the runner's)."""
        self.watch.start()
        return self.watch.up or await self.watch.probe_once()

    async def __is_alive__(self) -> bool:
        """BentoML's /livez: 503 once the runner has been unreachable for health.liveness_runner_timeout_s."""
        self.watch.start()
        return self.watch.alive

    # -- helpers --

    @property
    def brief(self) -> ModelInfoBrief | None:
        s = self.status
        if s is None or s.model is None:
            return None
        return ModelInfoBrief(model_variant=s.model.model_variant, device=s.device)

    def capabilities(self) -> list[str]:
        caps = ["segmentation", "contours", "visualizations"]
        if self.settings.inference.enable_batch_processing:
            caps.append("batch_processing")
        if self.settings.inference.enable_confidence:
            caps.append("confidence_scoring")
        return caps

    async def _call_runner(self, method: str, *args, failed: ApiError | None = None, **kwargs):
        """Call the runner, mapping failures to ApiError (``failed``, where given, for a call that failed).

        While the runner is down (see RunnerWatch) this fails at once with 503 RUNNER_UNAVAILABLE.
        Retries (these calls are idempotent) on a dropped connection and, with back-off, on the batcher's
        503 "overloaded" (a queue spike, e.g. during a model reload). The dropped connection is an idle
        keep-alive race (aio-libs/aiohttp#7297: the runner's server closes an idle pooled connection just as
        the dependency client reuses it; aiohttp's fix, aio-libs/aiohttp#7363, retries only idempotent
        *methods*, and BentoML's runner calls are POSTs) or the runner dying: the watch is told, and fails
        the retry if so.
        """
        patience = time.monotonic() + OVERLOAD_RETRY_S
        for attempt in itertools.count():
            try:
                return await self.watch.call(lambda: getattr(self.runner.to_async, method)(*args, **kwargs))
            except asyncio.TimeoutError:  # before ClientConnectionError: aiohttp's timeouts are both
                self.watch.suspect()
                raise unavailable("no answer within the runner's timeout") from None
            except aiohttp.ClientConnectionError:
                self.watch.suspect()
                if attempt >= RUNNER_RETRIES:
                    raise unavailable("connection lost") from None
            except bentoml.exceptions.BentoMLException as e:
                overloaded = e.error_code == HTTPStatus.SERVICE_UNAVAILABLE
                if not overloaded or time.monotonic() > patience:
                    log.warning("runner call %s failed: %s", method, e)
                    raise (failed if failed is not None and not overloaded else ApiError(
                        ErrorCode.RUNNER_UNAVAILABLE,
                        "the inference runner could not take the request (overloaded or restarting); retry shortly",
                    )) from None
                await asyncio.sleep(min(OVERLOAD_BACKOFF_S * 2**attempt, 1.0))

    def _remember(self, status) -> None:
        """Keep the runner's report (it arrives as the runner's RunnerStatus class or a dict)."""
        self.status = RunnerStatus.model_validate(status.model_dump() if hasattr(status, "model_dump") else status)

    async def runner_status(self, refresh: bool = False) -> RunnerStatus:
        self._remember(await self._call_runner("status", refresh=refresh))
        if self.status.model is None:
            raise ApiError(ErrorCode.MODEL_NOT_READY, self.status.error or "no model is loaded")
        return self.status

    async def _model_status(self) -> RunnerStatus:
        return self.status if self.status is not None and self.status.model is not None else await self.runner_status()

    def _error(self, e: ApiError, started: float, request_id: str, index: int | None = None) -> ErrorResponse:
        return ErrorResponse(error=ErrorDetail(code=e.code.value, message=e.message), index=index,
                             request_id=request_id, processing_time_ms=_ms(started), model_info=self.brief)

    def _respond(self, ctx: bentoml.Context, body, status: int = 200) -> Response:
        ctx.response.status_code = status
        return json_response(body, status)

    def _threshold(self, options: SegmentOptions | MaskRequest) -> float:
        return options.threshold if options.threshold is not None else self.settings.inference.threshold

    def _check_options(self, options: SegmentOptions) -> float:
        if options.return_confidence and not self.settings.inference.enable_confidence:
            raise ApiError(ErrorCode.FEATURE_DISABLED, "confidence scores are disabled (inference.enable_confidence)")
        return self._threshold(options)

    async def _prepare_many(self, images: list[str | Path],
                            max_total_pixels: int | None = None) -> list[PreparedImage | ApiError]:
        """Decode and resize: base64 text (the JSON APIs) or an uploaded file (the multipart APIs)."""
        status = await self._model_status()
        data = [im if isinstance(im, str) else im.read_bytes() for im in images]
        with metrics.get().timed("decode"):
            return await asyncio.to_thread(pipeline.prepare_many, data, status.model.preprocessing,
                                           self.settings.limits.max_image_pixels, max_total_pixels)

    async def _infer(self, prepared: list[PreparedImage]):
        """Probabilities for the prepared images, in runner-sized chunks that the batcher can merge."""
        step = self.settings.inference.batch_size
        chunks = [np.stack([p.model_input for p in prepared[i:i + step]]) for i in range(0, len(prepared), step)]
        with metrics.get().timed("runner"):
            results = await asyncio.gather(*(self._call_runner("infer", c) for c in chunks))
        return [prob for chunk in results for prob in chunk]

    @staticmethod
    async def _encode(func, *args):
        """Mask encoding and pictures, in a worker thread, timed as the `encode` stage."""
        def timed():
            with metrics.get().timed("encode"):
                return func(*args)
        return await asyncio.to_thread(timed)

    def _log(self, request_id: str, what: str, started: float, n: int = 1) -> None:
        """A request done: its log line and the images it segmented (unet_images_total)."""
        metrics.get().images.labels(what).inc(n)
        if self.settings.logging.log_requests:
            log.info("%s %s images=%d %.1fms", request_id, what, n, _ms(started))

    async def _segment_one(self, image: str | Path) -> tuple[PreparedImage, np.ndarray]:
        """One image through decode and the runner: (prepared image, model-size probabilities)."""
        (prepared,) = await self._prepare_many([image])
        if isinstance(prepared, ApiError):
            raise prepared
        (prob,) = await self._infer([prepared])
        return prepared, prob

    async def _segment_response(self, ctx: bentoml.Context, what: str, image: str | Path,
                                options: SegmentOptions) -> Response:
        """The /segment answer, for base64 text (/segment) or an uploaded file (/segment-image)."""
        started = time.perf_counter()
        request_id = ctx.request.headers.get("x-request-id", "")
        try:
            cut = self._check_options(options)
            prepared, prob = await self._segment_one(image)
            fields = await self._encode(pipeline.finish, prepared, prob, cut, options)
        except ApiError as e:
            return self._respond(ctx, self._error(e, started, request_id), e.status)
        self._log(request_id, what, started)
        return self._respond(ctx, SegmentResponse(**fields, request_id=request_id, model_info=self.brief,
                                                  processing_time_ms=_ms(started)))

    # -- POST APIs --

    @bentoml.api(route=f"{PREFIX}/segment")
    async def segment(self, image_data: Annotated[str, SegmentRequest.model_fields["image_data"]],
                      threshold: Threshold = None, return_confidence: ReturnConfidence = False,
                      return_contours: ReturnContours = False, return_visualizations: ReturnVisualizations = False,
                      mask_format: MaskFormatOption = "png", ctx: bentoml.Context = None) -> SegmentResponse:
        """Segment the nails in one image sent as base64 JPEG, PNG or BMP in a JSON body."""
        return await self._segment_response(ctx, "segment", image_data, _options(locals()))

    @bentoml.api(route=f"{PREFIX}/segment-image")
    async def segment_image(self, image: ImageFile, threshold: Threshold = None,
                            return_confidence: ReturnConfidence = False, return_contours: ReturnContours = False,
                            return_visualizations: ReturnVisualizations = False,
                            mask_format: MaskFormatOption = "png", ctx: bentoml.Context = None) -> SegmentResponse:
        """Segment the nails in an uploaded photo (multipart: file part `image`, options as form fields)."""
        return await self._segment_response(ctx, "segment-image", image, _options(locals()))

    @bentoml.api(route=f"{PREFIX}/mask")
    async def mask(self, image: ImageFile, threshold: Threshold = None,
                   overlay: Annotated[bool, MaskRequest.model_fields["overlay"]] = False,
                   ctx: bentoml.Context = None) -> PngImage:
        """An uploaded photo's mask as a PNG (255 = nail), or with overlay=true the photo with the mask over it."""
        started = time.perf_counter()
        request_id = ctx.request.headers.get("x-request-id", "")
        options = MaskRequest(threshold=threshold, overlay=overlay)  # form checked by RequestGuard
        try:
            cut = self._threshold(options)
            prepared, prob = await self._segment_one(image)
            png = await self._encode(pipeline.mask_picture, prepared, prob, cut, overlay)
        except ApiError as e:
            return self._respond(ctx, self._error(e, started, request_id), e.status)
        self._log(request_id, "mask", started)
        ctx.response.status_code = 200
        return Response(png, media_type="image/png")

    @bentoml.api(route=f"{PREFIX}/segment-batch")
    async def segment_batch(self, images: Annotated[list[BatchImage], SegmentBatchRequest.model_fields["images"]],
                            threshold: Threshold = None, return_confidence: ReturnConfidence = False,
                            return_contours: ReturnContours = False,
                            return_visualizations: ReturnVisualizations = False,
                            mask_format: MaskFormatOption = "png", ctx: bentoml.Context = None) -> SegmentBatchResponse:
        """Segment several images; a bad image fails only its own entry."""
        started = time.perf_counter()
        request_id = ctx.request.headers.get("x-request-id", "")
        request = SegmentBatchRequest(images=images, threshold=threshold, return_confidence=return_confidence,
                                      return_contours=return_contours, return_visualizations=return_visualizations,
                                      mask_format=mask_format)
        limits = self.settings.limits
        try:
            if not self.settings.inference.enable_batch_processing:
                raise ApiError(ErrorCode.FEATURE_DISABLED, "batch processing is disabled (inference.enable_batch_processing)")
            if not request.images:
                raise ApiError(ErrorCode.EMPTY_BATCH, "images is empty; send at least one image")
            if len(request.images) > limits.max_batch_images:
                raise ApiError(ErrorCode.BATCH_TOO_LARGE,
                               f"{len(request.images)} images; the limit is {limits.max_batch_images} a request")
            cut = self._check_options(request)
            prepared = await self._prepare_many([im.image_data for im in request.images], limits.max_batch_pixels)
            good = [p for p in prepared if not isinstance(p, ApiError)]
            probs = iter(await self._infer(good)) if good else iter(())

            def finish_all():
                results = []
                for i, p in enumerate(prepared):
                    if isinstance(p, ApiError):
                        results.append(self._error(p, started, request_id, index=i))
                    else:
                        results.append(SegmentResponse(**pipeline.finish(p, next(probs), cut, request),
                                                       request_id=request_id, model_info=self.brief))
                return results

            results = await self._encode(finish_all)
        except ApiError as e:
            return self._respond(ctx, self._error(e, started, request_id), e.status)
        elapsed = _ms(started)
        for r in results:
            r.processing_time_ms = elapsed
        self._log(request_id, "segment-batch", started, sum(r.success for r in results))
        return self._respond(ctx, SegmentBatchResponse(
            results=results, batch_size=len(results), total_processing_time_ms=elapsed, processing_time_ms=elapsed,
            request_id=request_id, model_info=self.brief))

    @bentoml.api(route=f"{PREFIX}/initialize")
    async def initialize(self, force_reload: bool = False, warm_up: bool = True,
                         ctx: bentoml.Context = None) -> InitializeResponse:
        """(Re)load the store's latest `unet` model in the runner; requests in flight are not failed."""
        started = time.perf_counter()
        request_id = ctx.request.headers.get("x-request-id", "")
        try:
            failed = ApiError(ErrorCode.MODEL_NOT_READY, "loading the store's latest model failed (see the runner's "
                              "log); the previous model is still served")
            self._remember(await self._call_runner("reload", force_reload=force_reload, warm_up=warm_up,
                                                   failed=failed))
            if self.status.error is not None:  # the store's latest did not load; the served model stays
                served = f"; the previous model is still served ({self.status.model_tag})"
                raise ApiError(ErrorCode.MODEL_NOT_READY, self.status.error + (served if self.status.model_loaded else ""))
        except ApiError as e:
            return self._respond(ctx, self._error(e, started, request_id), e.status)
        return self._respond(ctx, InitializeResponse(
            success=True, message="U-Net service initialized successfully", initialization_time_ms=_ms(started),
            service_ready=self.status.model_loaded, model_tag=self.status.model_tag, request_id=request_id,
            model_info=self.brief, processing_time_ms=_ms(started)))


serve_known_paths_only()
UNetAPI.add_asgi_middleware(metrics.RequestMetrics)  # first: outermost, so the guard's refusals count too
if settings.security.cors_origins:  # outside the guard: its 401/429/503 answers carry CORS headers too
    UNetAPI.add_asgi_middleware(CORSMiddleware, allow_origins=settings.security.cors_origins,
                                allow_methods=["GET", "POST"], allow_headers=["Authorization", "X-API-Key",
                                                                              "Content-Type", "X-Request-ID"],
                                expose_headers=["X-Request-ID", "Retry-After"], max_age=600)
UNetAPI.add_asgi_middleware(
    RequestGuard,
    max_body_bytes=settings.max_body_bytes,
    validated={f"{PREFIX}/segment": SegmentRequest, f"{PREFIX}/segment-batch": SegmentBatchRequest,
               f"{PREFIX}/initialize": InitializeRequest},
    forms={f"{PREFIX}/segment-image": SegmentOptions, f"{PREFIX}/mask": MaskRequest},
    model_info=lambda: _current_brief(),
    access=AccessPolicy.from_settings(settings.security, admin_paths=[f"{PREFIX}/initialize"]),
    rate_limit=RateLimiter(settings.limits.rate_limit_per_minute, settings.limits.rate_limit_burst),
    inflight=InflightImages(settings.max_inflight_images),
    image_paths=frozenset({f"{PREFIX}/segment", f"{PREFIX}/segment-batch", f"{PREFIX}/segment-image", f"{PREFIX}/mask"}),
)

UNetAPI.add_asgi_middleware(OpenApiDocs, max_batch_images=settings.limits.max_batch_images)


def _current_brief() -> ModelInfoBrief | None:
    try:
        return bentoml.get_current_service().brief
    except Exception:  # not instantiated yet
        return None
