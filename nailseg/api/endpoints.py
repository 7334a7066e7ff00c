"""Every route of the route table bound to its handler, by reference (``HANDLERS``), and what serves them.

- The POST endpoints under the prefix are BentoML API methods: ``with_apis`` adds one to the service
  class per route, its parameters generated from the route's model (BentoML's schema and client read
  them), and calls the handler with the model the guard validated (a JSON body is parsed once, by the
  guard), the uploaded photo for a form, and the call (request id, start).
- The GET endpoints under the prefix and the Open Inference Protocol's are Starlette apps, mounted when
  the service class is made (``Apps``) and given their routes and collaborators in the service's
  ``__init__``.

Every handler is given its collaborators (nailseg/api/deps.py) when its app is built; none looks up the
current service.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Annotated, Awaitable, Callable

import bentoml
from bentoml.validators import ContentType
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from nailseg.api import debug, handlers, info
from nailseg.api.answers import answer, error_body, json_response
from nailseg.api.deps import Call, Deps
from nailseg.api.guard.asgi import Scope, state
from nailseg.api.guard.forms import FILE_FIELD
from nailseg.api.guard.validation import validated_request
from nailseg.api.routes import OIP_PREFIX, PREFIX, ROUTES, Route, served
from nailseg.api.schemas import ErrorDetail, ErrorResponse
from nailseg.errors import ApiError
from nailseg.oip import serving

HANDLERS: dict[str, Callable[..., Awaitable]] = {
    "segment": handlers.segment,
    "segment-image": handlers.segment_image,
    "mask": handlers.mask,
    "tryon": handlers.tryon,
    "segment-batch": handlers.segment_batch,
    "initialize": handlers.initialize,
    "health": info.health,
    "model-info": info.model_info,
    "version": info.version,
    "demo": info.demo_page,
    "debug-config": debug.config,
    "debug-requests": debug.requests,
    "debug-outputs": debug.outputs,
    "v2": serving.server_metadata,
    "v2-live": serving.live,
    "v2-ready": serving.ready,
    "v2-model": serving.model_metadata,
    "v2-model-version": serving.model_metadata,
    "v2-model-ready": serving.model_ready,
    "v2-model-version-ready": serving.model_ready,
    "v2-model-config": serving.model_config,
    "v2-model-version-config": serving.model_config,
    "v2-infer": serving.infer,
    "v2-model-version-infer": serving.infer,
}
if set(HANDLERS) != set(ROUTES):
    raise RuntimeError(f"routes without a handler: {sorted(set(ROUTES) - set(HANDLERS))}; "
                       f"handlers without a route: {sorted(set(HANDLERS) - set(ROUTES))}")

ImageFile = Annotated[Path, Field(description="the photo: a JPEG, PNG or BMP file (multipart part `image`)")]


def api_routes() -> list[Route]:
    """The routes served as BentoML API methods: ours that take a body."""
    return [r for r in ROUTES.values() if r.protocol == "unet" and r.method == "POST"]


def _call(scope: Scope, headers) -> Call:
    return Call(headers.get("x-request-id", ""), state(scope).get("started") or time.perf_counter())


def api_method(route: Route):
    """The BentoML API method of ``route``: its parameters are the route's model's fields (and the photo);
    it calls the route's handler with ``self.deps``, the model the guard validated and the call."""
    handler, model = HANDLERS[route.name], route.model
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    if route.form is not None:
        params.append(inspect.Parameter(FILE_FIELD, inspect.Parameter.KEYWORD_ONLY, annotation=ImageFile))
    for name, field in model.model_fields.items():
        # BentoML parses an empty object for a JSON body (the guard has the real one): a required field
        # needs a default for that parse only
        default = (field.get_default(call_default_factory=True) if not field.is_required()
                   else None if route.body is not None else inspect.Parameter.empty)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=Annotated[field.annotation, field]))
    params.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, default=None,
                                    annotation=bentoml.Context))
    returns = route.answer or Annotated[Path, ContentType(route.answer_media)]

    async def method(self, ctx: bentoml.Context = None, **fields) -> Response:
        deps: Deps = self.deps
        call = _call(ctx.request.scope, ctx.request.headers)
        photo = (fields[FILE_FIELD],) if route.form is not None else ()
        try:
            body, status = await handler(deps, *photo, validated_request(ctx.request.scope), call), 200
        except ApiError as e:
            body, status = error_body(e, call.started, call.request_id, deps.brief), e.status
        ctx.response.status_code = status
        return answer(body, call.request_id, deps.brief, call.started, status)

    method.__name__ = method.__qualname__ = route.name.replace("-", "_")
    method.__doc__ = route.summary
    method.__signature__ = inspect.Signature(params, return_annotation=returns)
    return bentoml.api(route=route.path)(method)


def with_apis(cls: type) -> type:
    """Class decorator (below ``@bentoml.service``): the API method of every route in ``api_routes``."""
    for route in api_routes():
        method = api_method(route)
        setattr(cls, method.name, method)
    return cls


def _endpoint(route: Route, deps: Deps):
    handler = HANDLERS[route.name]
    if route.infer:
        async def endpoint(request: Request) -> Response:
            return await handler(deps, request, validated_request(request.scope), _call(request.scope, request.headers))
    else:
        async def endpoint(request: Request) -> Response:
            return await handler(deps, request)
    return endpoint


def _fill(app: Starlette, routes: list[Route], prefix: str, deps: Deps, on_error) -> Starlette:
    app.router.routes.extend(StarletteRoute(r.path.removeprefix(prefix) or "/", _endpoint(r, deps), methods=[r.method])
                             for r in routes)
    app.add_exception_handler(ApiError, on_error)
    return app


def get_app(deps: Deps, debug_endpoints: bool = False, app: Starlette | None = None) -> Starlette:
    """The GET endpoints under the prefix (into ``app``, else a new app); the debug ones only with
    ``debug_endpoints`` (else unknown paths)."""
    async def on_error(request: Request, exc: ApiError) -> Response:
        body = ErrorResponse(error=ErrorDetail(code=exc.code.value, message=exc.message), model_info=deps.brief,
                             request_id=request.headers.get("x-request-id", ""))
        return json_response(body, exc.status)

    routes = [r for r in served(debug_endpoints) if r.protocol == "unet" and r.method == "GET"]
    return _fill(app or Starlette(), routes, PREFIX, deps, on_error)


def oip_app(deps: Deps, app: Starlette | None = None) -> Starlette:
    """The Open Inference Protocol's endpoints; their errors are the protocol's ``{"error": "..."}``."""
    async def on_error(request: Request, exc: ApiError) -> Response:
        return serving.error(exc.message, exc.code.status)

    return _fill(app or Starlette(), [r for r in ROUTES.values() if r.protocol == "oip"], OIP_PREFIX, deps, on_error)


class Apps:
    """The apps service.py mounts when the service class is made (BentoML mounts them then), empty until
    the service's ``__init__`` builds their collaborators and routes (``bind``, before the first request);
    and the model brief the guard's refusals carry."""

    def __init__(self, debug_endpoints: bool) -> None:
        self.debug_endpoints = debug_endpoints
        self.get, self.oip = Starlette(), Starlette()
        self.deps: Deps | None = None

    def bind(self, deps: Deps) -> None:
        self.deps = deps
        get_app(deps, self.debug_endpoints, self.get)
        oip_app(deps, self.oip)

    def brief(self):
        return self.deps.brief if self.deps is not None else None
