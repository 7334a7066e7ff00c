"""The guard: ASGI layers in front of the API's handlers, one job each, in this order:

0. ``NoSniff`` (headers.py): ``X-Content-Type-Options: nosniff`` on every answer; it wraps BentoML's
   whole app (nailseg/compat/whole_app.py), outside CORS and the metrics, so it is not among ``layers``;

1. ``RequestIds`` (request_id.py): an id for every request, on every answer and in error logs;
2. ``ErrorShape`` (error_shape.py): foreign error answers (404, 405, BentoML's) rewritten into our shape;
3. ``Access`` (auth.py): API and admin keys (401/403);
4. ``Admission`` (limits.py): the per-client rate limit (429), a full in-flight cap (503), before the body;
5. ``Validation`` (validation.py): body size (413), media type (415), JSON and forms (400/422);
6. ``InflightCap`` (limits.py): the request's images held in the in-flight count while it is served.

``layers`` lists them with their settings; service.py adds them from the route table.
"""

from __future__ import annotations

from typing import Any, Callable, Container

from pydantic import BaseModel

from nailseg.api.guard.asgi import state
from nailseg.api.guard.auth import Access, AccessPolicy
from nailseg.api.guard.error_shape import ErrorShape, Refusals
from nailseg.api.guard.limits import Admission, InflightCap, InflightImages, RateLimiter
from nailseg.api.guard.request_id import RequestIds
from nailseg.api.guard.validation import Validation
from nailseg.api.schemas import ModelInfoBrief


def layers(*, max_body_bytes: int, validated: dict[str, type[BaseModel]],
           model_info: Callable[[], ModelInfoBrief | None], forms: dict[str, type[BaseModel]] | None = None,
           access: AccessPolicy | None = None, rate_limit: RateLimiter | None = None,
           inflight: InflightImages | None = None, image_paths: Container[str] = frozenset(),
           infer: Container[str] = (), parse_infer: Callable | None = None) -> list[tuple[type, dict[str, Any]]]:
    """The guard's layers, outermost first, as (ASGI middleware class, its keyword arguments)."""
    refusals = Refusals(model_info)
    stack: list[tuple[type, dict[str, Any]]] = [(RequestIds, {}), (ErrorShape, {"refusals": refusals})]
    if access is not None:
        stack.append((Access, {"policy": access, "refusals": refusals}))
    if rate_limit is not None or inflight is not None:
        stack.append((Admission, {"refusals": refusals, "rate_limit": rate_limit, "inflight": inflight,
                                  "image_paths": image_paths,
                                  "open_paths": access.public_paths if access is not None else frozenset()}))
    stack.append((Validation, {"refusals": refusals, "max_body_bytes": max_body_bytes, "validated": validated,
                               "forms": forms, "infer": infer, "parse_infer": parse_infer}))
    if inflight is not None:
        stack.append((InflightCap, {"refusals": refusals}))
    return stack


def started(scope) -> float:
    """When the guard took this request (perf_counter): what every answer's processing_time_ms counts from."""
    return state(scope)["started"]
