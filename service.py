"""The nail segmentation API (../shared/spec/unet_serving_guide.md), served by `bentoml serve .`.

POST /api/unet/segment, /segment-batch, /initialize are BentoML APIs; GET /api/unet/health and
/model-info come from a small mounted Starlette app. The model runs in the UNetRunner service.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from http import HTTPStatus

import aiohttp
import bentoml
import numpy as np
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nailseg import pipeline
from nailseg.config import get_settings
from nailseg.errors import ApiError, ErrorCode
from nailseg.admission import InflightImages, RateLimiter
from nailseg.middleware import RequestGuard, serve_known_paths_only
from nailseg.pipeline import PreparedImage
from nailseg.schemas import (
    SUPPORTED_FORMATS, ErrorDetail, ErrorResponse, HealthResponse, InitializeRequest, InitializeResponse,
    ModelInfoBrief, ModelInfoResponse, RunnerStatus, SegmentBatchRequest, SegmentOptions, SegmentRequest,
    SegmentBatchResponse, SegmentResponse,
)
from nailseg.security import AccessPolicy, shown_checkpoint_path
from runners.unet_runner import UNetRunner

PREFIX = "/api/unet"
RUNNER_RETRIES = 3
OVERLOAD_BACKOFF_S = 0.1
settings = get_settings()
logging.getLogger("unet").setLevel(settings.logging.level)
log = logging.getLogger("unet.api")


def json_response(body: BaseModel, status: int = 200) -> JSONResponse:
    """Fields that do not apply (None) are left out: absent, not null."""
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=status)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


# ---- GET endpoints (a mounted app: BentoML APIs are POST only) ------------------------------

async def health(request: Request) -> JSONResponse:
    svc: UNetAPI = bentoml.get_current_service()
    started = time.perf_counter()
    try:
        status = await svc.runner_status(refresh=True)
    except ApiError as e:
        status = RunnerStatus(model_loaded=False, device="unknown", gpu_available=False, pools_ready=False,
                              error=e.message)
    healthy = status.model_loaded and status.pools_ready and status.last_health_check_ok is not False
    body = HealthResponse(
        service_healthy=healthy,
        model_loaded=status.model_loaded,
        memory_pools_ready=status.pools_ready,
        gpu_available=status.gpu_available,
        device=status.device,
        last_health_check=(datetime.fromtimestamp(status.last_health_check, timezone.utc).isoformat(timespec="seconds")
                           if status.last_health_check else None),
        memory_usage=status.memory_usage,
        capabilities=svc.capabilities(),
        error=status.error,
        model_info=svc.brief,
        request_id=request.headers.get("x-request-id", ""),
        processing_time_ms=_ms(started),
    )
    return json_response(body, 200 if healthy else 503)


async def model_info(request: Request) -> JSONResponse:
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
        model_info=svc.brief,
        request_id=request.headers.get("x-request-id", ""),
        processing_time_ms=_ms(started),
    )
    return json_response(body)


async def _api_error_handler(request: Request, exc: ApiError) -> JSONResponse:
    svc: UNetAPI = bentoml.get_current_service()
    body = ErrorResponse(error=ErrorDetail(code=exc.code.value, message=exc.message), model_info=svc.brief,
                         request_id=request.headers.get("x-request-id", ""))
    return json_response(body, exc.status)


get_app = Starlette(
    routes=[Route("/health", health, methods=["GET"]), Route("/model-info", model_info, methods=["GET"])],
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

        Retries (these calls are idempotent) on a dropped connection (an idle keep-alive race) and,
        with back-off, on the batcher's 503 "overloaded" (a queue spike, e.g. during a model reload).
        """
        for attempt in range(RUNNER_RETRIES + 1):
            last = attempt == RUNNER_RETRIES
            try:
                return await getattr(self.runner.to_async, method)(*args, **kwargs)
            except aiohttp.ClientConnectionError:
                if last:
                    raise ApiError(ErrorCode.RUNNER_UNAVAILABLE, "the inference runner is not reachable") from None
            except bentoml.exceptions.BentoMLException as e:
                if e.error_code != HTTPStatus.SERVICE_UNAVAILABLE or last:
                    log.warning("runner call %s failed: %s", method, e)
                    overloaded = e.error_code == HTTPStatus.SERVICE_UNAVAILABLE
                    raise (failed if failed is not None and not overloaded else ApiError(
                        ErrorCode.RUNNER_UNAVAILABLE,
                        "the inference runner could not take the request (overloaded or restarting); retry shortly",
                    )) from None
                await asyncio.sleep(OVERLOAD_BACKOFF_S * 3**attempt)

    def _remember(self, status) -> None:
        """Keep the runner's report (it arrives as the runner's RunnerStatus class or a dict)."""
        self.status = RunnerStatus.model_validate(status.model_dump() if hasattr(status, "model_dump") else status)

    async def runner_status(self, refresh: bool = False) -> RunnerStatus:
        self._remember(await self._call_runner("status", refresh=refresh))
        if self.status.model is None:
            raise ApiError(ErrorCode.MODEL_NOT_READY, "no model is loaded")
        return self.status

    async def _model_status(self) -> RunnerStatus:
        return self.status if self.status is not None and self.status.model is not None else await self.runner_status()

    def _error(self, e: ApiError, started: float, request_id: str, index: int | None = None) -> ErrorResponse:
        return ErrorResponse(error=ErrorDetail(code=e.code.value, message=e.message), index=index,
                             request_id=request_id, processing_time_ms=_ms(started), model_info=self.brief)

    def _respond(self, ctx: bentoml.Context, body, status: int = 200) -> JSONResponse:
        ctx.response.status_code = status
        return json_response(body, status)

    def _check_options(self, options: SegmentOptions) -> float:
        if options.return_confidence and not self.settings.inference.enable_confidence:
            raise ApiError(ErrorCode.FEATURE_DISABLED, "confidence scores are disabled (inference.enable_confidence)")
        return options.threshold if options.threshold is not None else self.settings.inference.threshold

    async def _prepare_many(self, images: list[str]) -> list[PreparedImage | ApiError]:
        status = await self._model_status()
        prep, limit = status.model.preprocessing, self.settings.limits.max_image_pixels

        def work() -> list[PreparedImage | ApiError]:
            out: list[PreparedImage | ApiError] = []
            for data in images:
                try:
                    out.append(pipeline.prepare(data, prep, limit))
                except ApiError as e:
                    out.append(e)
            return out

        return await asyncio.to_thread(work)

    async def _infer(self, prepared: list[PreparedImage]):
        """Probabilities for the prepared images, in runner-sized chunks that the batcher can merge."""
        step = self.settings.inference.batch_size
        chunks = [np.stack([p.model_input for p in prepared[i:i + step]]) for i in range(0, len(prepared), step)]
        results = await asyncio.gather(*(self._call_runner("infer", c) for c in chunks))
        return [prob for chunk in results for prob in chunk]

    def _log(self, request_id: str, what: str, started: float, n: int = 1) -> None:
        if self.settings.logging.log_requests:
            log.info("%s %s images=%d %.1fms", request_id, what, n, _ms(started))

    # -- POST APIs --

    @bentoml.api(route=f"{PREFIX}/segment")
    async def segment(self, image_data: str, threshold: float | None = None, return_confidence: bool = False,
                      return_contours: bool = False, return_visualizations: bool = False,
                      ctx: bentoml.Context = None) -> SegmentResponse:
        """Segment the nails in one image (base64 JPEG, PNG or BMP)."""
        started = time.perf_counter()
        request_id = ctx.request.headers.get("x-request-id", "")
        options = SegmentOptions(threshold=threshold, return_confidence=return_confidence,  # body checked by RequestGuard
                                 return_contours=return_contours, return_visualizations=return_visualizations)
        try:
            cut = self._check_options(options)
            (prepared,) = await self._prepare_many([image_data])
            if isinstance(prepared, ApiError):
                raise prepared
            (prob,) = await self._infer([prepared])
            fields = await asyncio.to_thread(pipeline.finish, prepared, prob, cut, options)
        except ApiError as e:
            return self._respond(ctx, self._error(e, started, request_id), e.status)
        self._log(request_id, "segment", started)
        return self._respond(ctx, SegmentResponse(**fields, request_id=request_id, model_info=self.brief,
                                                  processing_time_ms=_ms(started)))

    @bentoml.api(route=f"{PREFIX}/segment-batch")
    async def segment_batch(self, images: list[dict], threshold: float | None = None,
                            return_confidence: bool = False, return_contours: bool = False,
                            return_visualizations: bool = False, ctx: bentoml.Context = None) -> SegmentBatchResponse:
        """Segment several images; a bad image fails only its own entry."""
        started = time.perf_counter()
        request_id = ctx.request.headers.get("x-request-id", "")
        request = SegmentBatchRequest(images=images, threshold=threshold, return_confidence=return_confidence,
                                      return_contours=return_contours, return_visualizations=return_visualizations)
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
            prepared = await self._prepare_many([im.image_data for im in request.images])
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

            results = await asyncio.to_thread(finish_all)
        except ApiError as e:
            return self._respond(ctx, self._error(e, started, request_id), e.status)
        elapsed = _ms(started)
        for r in results:
            r.processing_time_ms = elapsed
        self._log(request_id, "segment-batch", started, len(results))
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
        except ApiError as e:
            return self._respond(ctx, self._error(e, started, request_id), e.status)
        return self._respond(ctx, InitializeResponse(
            success=True, message="U-Net service initialized successfully", initialization_time_ms=_ms(started),
            service_ready=self.status.model_loaded, model_tag=self.status.model_tag, request_id=request_id,
            model_info=self.brief, processing_time_ms=_ms(started)))


serve_known_paths_only()
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
    model_info=lambda: _current_brief(),
    access=AccessPolicy.from_settings(settings.security, admin_paths=[f"{PREFIX}/initialize"]),
    rate_limit=RateLimiter(settings.limits.rate_limit_per_minute, settings.limits.rate_limit_burst),
    inflight=InflightImages(settings.max_inflight_images),
    image_paths=frozenset({f"{PREFIX}/segment", f"{PREFIX}/segment-batch"}),
)


def _current_brief() -> ModelInfoBrief | None:
    try:
        return bentoml.get_current_service().brief
    except Exception:  # not instantiated yet
        return None
