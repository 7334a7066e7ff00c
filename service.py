"""The nail segmentation API (../shared/spec/unet_serving_guide.md), served by `bentoml serve .`.

The service and its wiring only: its API methods (the POST endpoints) and mounted apps (the GET and the
Open Inference Protocol's endpoints) come from the route table, bound to their handlers in
nailseg/api/endpoints.py; ``__init__`` builds the collaborators every handler is given
(nailseg/api/deps.py). The guard's layers, the metrics and the OpenAPI additions are added from the same
table, and the request trace for the debug keys (nailseg/api/request_trace.py) only when one is on. The
model runs in the UNetRunner service (runners/unet_runner.py).
"""

from __future__ import annotations

import logging

import bentoml
from starlette.middleware.cors import CORSMiddleware

from nailseg import compat, logs, metrics
from nailseg.api import endpoints, guard
from nailseg.api.debug_outputs import DebugOutputs
from nailseg.api.deps import Deps
from nailseg.api.guard.auth import AccessPolicy
from nailseg.api.guard.limits import InflightImages, RateLimiter
from nailseg.api.openapi import OpenApiDocs
from nailseg.api.request_trace import RecentRequests, RequestTrace
from nailseg.api.routes import OIP_PREFIX, PREFIX, ROUTES, PathSet, endpoint_label
from nailseg.config import get_settings
from nailseg.oip.serving import parse_infer
from runners.unet_runner import UNetRunner

settings = get_settings()
logging.getLogger("unet").setLevel(settings.logging.level)
logs.install()
compat.apply_service_module()  # `bentoml serve` imports this module in its own process too

development = settings.development  # the serving guide's debug mode: every key off by default
recent_requests = RecentRequests() if development.enable_debug_endpoints else None  # GET /debug/requests
saved_outputs = (DebugOutputs(development.debug_output_dir, development.max_debug_outputs)
                 if development.save_debug_outputs else None)
apps = endpoints.Apps(development.enable_debug_endpoints)


@bentoml.asgi_app(apps.oip, path=OIP_PREFIX)
@bentoml.asgi_app(apps.get, path=PREFIX)
@bentoml.service(name="unet_api", workers=settings.api.workers, http={"port": 8001}, traffic={"timeout": 120},
                 tracing=settings.api.bentoml_tracing)
@endpoints.with_apis
class UNetAPI:
    runner = bentoml.depends(UNetRunner)

    def __init__(self) -> None:
        from nailseg.compat import shutdown

        self.deps = Deps.build(settings, self.runner, recent_requests)
        apps.bind(self.deps)
        shutdown.api_stops_accepting_first()

    async def __is_ready__(self) -> bool:
        return await self.deps.ready()

    async def __is_alive__(self) -> bool:
        return self.deps.alive()


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
    model_info=apps.brief,
    access=AccessPolicy.from_settings(settings.security, admin_paths=[r.path for r in ROUTES.values() if r.admin],
                                      debug_paths=[r.path for r in ROUTES.values() if r.debug]),
    rate_limit=RateLimiter(settings.limits.rate_limit_per_minute, settings.limits.rate_limit_burst),
    inflight=InflightImages(settings.max_inflight_images, on_change=lambda n: metrics.get().inflight.set(n)),
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
