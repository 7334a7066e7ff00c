"""The handlers of the GET endpoints under the prefix (/health, /model-info, /version, /demo; the debug ones are in
nailseg/api/debug.py): each is given its collaborators and the Starlette request. BentoML APIs are POST
only, so nailseg/api/endpoints.py serves them from a Starlette app mounted under the prefix."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import bentoml
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from nailseg.api import demo
from nailseg.api.answers import answer
from nailseg.api.deps import Deps
from nailseg.api.guard.auth import shown_checkpoint_path
from nailseg.api.openapi import project_version
from nailseg.api.schemas import SUPPORTED_FORMATS, HealthResponse, ModelInfoResponse, RunnerStatus, VersionResponse
from nailseg.errors import ApiError


def capabilities(settings) -> list[str]:
    caps = ["segmentation", "contours", "visualizations"]
    if settings.inference.enable_batch_processing:
        caps.append("batch_processing")
    if settings.inference.enable_confidence:
        caps.append("confidence_scoring")
    return caps


async def health(deps: Deps, request: Request) -> Response:
    started = time.perf_counter()
    try:
        status = await deps.runner_client.refresh(refresh=True)
    except ApiError as e:
        last = deps.runner_client.status
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
        capabilities=capabilities(deps.settings),
        error=status.error or (None if healthy else "the model's last health check failed"),
        skipped_models=status.skipped_models,
    )
    return answer(body, request.headers.get("x-request-id", ""), deps.brief, started, 200 if healthy else 503)


async def model_info(deps: Deps, request: Request) -> Response:
    started = time.perf_counter()
    status = await deps.runner_client.refresh()
    m, prep = status.model, status.model.preprocessing
    h, w = prep.image_size
    body = ModelInfoResponse(
        model_tag=status.model_tag,
        model_variant=m.model_variant,
        checkpoint_path=shown_checkpoint_path(m.source_file, deps.settings.security.expose_server_paths),
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
    return answer(body, request.headers.get("x-request-id", ""), deps.brief, started)


async def version(deps: Deps, request: Request) -> Response:
    started = time.perf_counter()
    status = await deps.runner_client.model_status()
    body = VersionResponse(version=project_version(), bentoml_version=bentoml.__version__, model_tag=status.model_tag)
    return answer(body, request.headers.get("x-request-id", ""), deps.brief, started)


async def demo_page(deps: Deps, request: Request) -> HTMLResponse:
    """A page to try the service in a browser (nailseg/api/demo.html)."""
    return HTMLResponse(demo.page(), headers=demo.headers())
