"""The GET endpoints (/health, /model-info, /demo, and with development.enable_debug_endpoints the debug
ones of nailseg/api/debug.py): a small Starlette app that service.py mounts under the prefix (BentoML
APIs are POST only). Their paths come from the route table."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from nailseg.api import debug, demo
from nailseg.api.answers import answer, json_response
from nailseg.api.guard.auth import shown_checkpoint_path
from nailseg.api.routes import PREFIX, ROUTES
from nailseg.api.schemas import (
    SUPPORTED_FORMATS,
    ErrorDetail,
    ErrorResponse,
    HealthResponse,
    ModelInfoResponse,
    RunnerStatus,
)
from nailseg.errors import ApiError


def capabilities(settings) -> list[str]:
    caps = ["segmentation", "contours", "visualizations"]
    if settings.inference.enable_batch_processing:
        caps.append("batch_processing")
    if settings.inference.enable_confidence:
        caps.append("confidence_scoring")
    return caps


async def health(request: Request) -> Response:
    svc = bentoml.get_current_service()
    started = time.perf_counter()
    try:
        status = await svc.runner_client.refresh(refresh=True)
    except ApiError as e:
        last = svc.runner_client.status
        status = RunnerStatus(model_loaded=False, device="unknown", gpu_available=False, pools_ready=False,
                              error=e.message, skipped_models=last.skipped_models if last else [])
    healthy = status.model_loaded and status.pools_ready and status.last_health_check_ok is not False
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
        capabilities=capabilities(svc.settings),
        error=status.error or (None if healthy else "the model's last health check failed"),
        skipped_models=status.skipped_models,
    )
    return answer(body, request.headers.get("x-request-id", ""), svc.brief, started, 200 if healthy else 503)


async def model_info(request: Request) -> Response:
    svc = bentoml.get_current_service()
    started = time.perf_counter()
    status = await svc.runner_client.refresh()
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
    )
    return answer(body, request.headers.get("x-request-id", ""), svc.brief, started)


async def demo_page(request: Request) -> HTMLResponse:
    """A page to try the service in a browser (nailseg/api/demo.html)."""
    return HTMLResponse(demo.page(), headers=demo.headers())


async def _api_error(request: Request, exc: ApiError) -> Response:
    svc = bentoml.get_current_service()
    body = ErrorResponse(error=ErrorDetail(code=exc.code.value, message=exc.message), model_info=svc.brief,
                         request_id=request.headers.get("x-request-id", ""))
    return json_response(body, exc.status)


_HANDLERS = {"health": health, "model-info": model_info, "demo": demo_page}


def get_app(debug_endpoints: bool = False) -> Starlette:
    """The GET endpoints' app; the debug endpoints are routes only with ``debug_endpoints`` (else unknown paths)."""
    handlers = {**_HANDLERS, **(debug.HANDLERS if debug_endpoints else {})}
    return Starlette(routes=[Route(ROUTES[name].path.removeprefix(PREFIX), handler, methods=["GET"])
                             for name, handler in handlers.items()],
                     exception_handlers={ApiError: _api_error})
