"""The route table: every endpoint of the API, declared once.

The guard (keys, limits, body validation), the metrics, the OpenAPI additions and the demo page read
it; nailseg/api/endpoints.py binds each entry to its handler. Adding an endpoint is one entry here plus
its typed handler bound there (tests/test_routes.py checks that every entry is served, documented and
counted; tests/test_endpoints.py that each handler takes its route's model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from nailseg.oip.types import InferRequest
from nailseg.api.schemas import (
    DebugConfigResponse,
    DebugOutputsResponse,
    DebugRequestsResponse,
    HealthResponse,
    InitializeRequest,
    InitializeResponse,
    MaskRequest,
    ModelInfoResponse,
    SegmentBatchRequest,
    SegmentBatchResponse,
    SegmentOptions,
    SegmentRequest,
    SegmentResponse,
    TryOnRequest,
    VersionResponse,
)

PREFIX = "/api/unet"  # the serving guide's endpoints
OIP_PREFIX = "/v2"  # the Open Inference Protocol's (KServe v2 REST), nailseg/oip/serving.py
MODEL = "unet"  # the model's name there: the model store's name for it

# The error codes (nailseg/errors.py, and the guard's keys and limits) each kind of endpoint can answer with.
_ACCESS = {401: ["UNAUTHORIZED"], 429: ["RATE_LIMITED"]}
_SERVER = {503: ["MODEL_NOT_READY", "RUNNER_UNAVAILABLE", "OVERLOADED"]}
_IMAGE = {400: ["EMPTY_IMAGE", "NOT_AN_IMAGE", "TRUNCATED_IMAGE"], 413: ["BODY_TOO_LARGE", "IMAGE_TOO_LARGE"],
          415: ["UNSUPPORTED_MEDIA_TYPE", "UNSUPPORTED_FORMAT"], 422: ["INVALID_REQUEST"]}
_JSON_IMAGE = {**_IMAGE, 400: ["INVALID_JSON", "INVALID_BASE64", *_IMAGE[400]]}
# The protocol's errors are {"error": "<message>"}, without codes: these name what each status means.
_OIP_ACCESS = {401: ["no or unknown key"], 403: ["key without the right"], 429: ["rate limited"]}
_OIP_MODEL = {**_OIP_ACCESS, 404: ["unknown model or version"], 503: ["model not ready"]}
_OIP_INFER = {**_OIP_MODEL, 400: ["bad tensor, datatype, shape or image"], 413: ["body or image too large"],
              415: ["unsupported content encoding"], 503: ["model not ready, runner unavailable or overloaded"]}


@dataclass(frozen=True)
class Route:
    name: str  # the metrics' endpoint label; the path under PREFIX
    method: Literal["GET", "POST"]
    summary: str
    body: type[BaseModel] | None = None  # a JSON body, parsed and validated once, by the guard
    form: type[BaseModel] | None = None  # the form fields of a multipart body (the photo is the part `image`)
    answer: type[BaseModel] | None = None  # the 200 answer's JSON model (None: not JSON)
    answer_media: str = "application/json"  # where answer is None: the 200 answer's media type
    answer_also: tuple[str, ...] = ()  # other media types an option may ask for
    admin: bool = False  # needs an admin key when keys are configured
    debug: bool = False  # served only with development.enable_debug_endpoints; admin keys only, never open
    images: bool = False  # its images count against limits.max_inflight_images
    errors: dict[int, list[str]] = field(default_factory=dict)
    template: str | None = None  # the full path, {parameters} included, where it is not PREFIX/name
    protocol: Literal["unet", "oip"] = "unet"  # whose error shape: ours, or the protocol's {"error": "..."}
    infer: bool = False  # an Open Inference Protocol infer body, parsed and checked by the guard

    @property
    def model(self) -> type | None:
        """What the guard validates and the handler is given: the JSON body's model, the form's, the infer body."""
        return self.body or self.form or (InferRequest if self.infer else None)

    @property
    def path(self) -> str:
        return self.template or f"{PREFIX}/{self.name}"

    @property
    def pattern(self) -> re.Pattern:
        return re.compile("^" + re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(self.path)) + "$")


_TABLE = (
    Route("segment", "POST", "Segment the nails in one image sent as base64 JPEG, PNG or BMP in a JSON body.",
          body=SegmentRequest, answer=SegmentResponse, images=True,
          errors={**_ACCESS, **_SERVER, **_JSON_IMAGE, 403: ["FEATURE_DISABLED"]}),
    Route("segment-image", "POST", "Segment the nails in an uploaded photo (multipart: file part `image`, options "
          "as form fields).", form=SegmentOptions, answer=SegmentResponse, images=True,
          errors={**_ACCESS, **_SERVER, **_IMAGE, 403: ["FEATURE_DISABLED"]}),
    Route("mask", "POST", "An uploaded photo's mask as a PNG (255 = nail), or with overlay=true the photo with the "
          "mask over it.", form=MaskRequest, answer_media="image/png", images=True,
          errors={**_ACCESS, **_SERVER, **_IMAGE}),
    Route("tryon", "POST", "Nail-polish try-on: an uploaded photo at its own size and orientation with its nails "
          "painted in `color` (PNG, or JPEG with output_format=jpeg).", form=TryOnRequest, answer_media="image/png",
          answer_also=("image/jpeg",), images=True, errors={**_ACCESS, **_SERVER, **_IMAGE}),
    Route("segment-batch", "POST", "Segment several images; a bad image fails only its own entry.",
          body=SegmentBatchRequest, answer=SegmentBatchResponse, images=True,
          errors={**_ACCESS, **_SERVER, **_JSON_IMAGE, 403: ["FEATURE_DISABLED"],
                  413: [*_JSON_IMAGE[413], "BATCH_TOO_LARGE", "BATCH_PIXELS_TOO_LARGE"],
                  422: ["INVALID_REQUEST", "EMPTY_BATCH"]}),
    Route("initialize", "POST", "(Re)load the store's latest `unet` model in the runner; requests in flight are "
          "not failed.", body=InitializeRequest, answer=InitializeResponse, admin=True,
          errors={**_ACCESS, **_SERVER, 400: ["INVALID_JSON"], 403: ["FORBIDDEN"], 413: ["BODY_TOO_LARGE"],
                  415: ["UNSUPPORTED_MEDIA_TYPE"], 422: ["INVALID_REQUEST"]}),
    Route("health", "GET", "Real state of the model and runner: 200 when it can serve, 503 (same body) when it "
          "cannot.", answer=HealthResponse, errors={**_ACCESS}),
    Route("model-info", "GET", "The served model: tag, architecture, checkpoint, preprocessing, device, precision "
          "and backend.", answer=ModelInfoResponse, errors={**_ACCESS, **_SERVER}),
    Route("version", "GET", "The versions served: this service's package, BentoML, and the model's store tag.",
          answer=VersionResponse, errors={**_ACCESS, **_SERVER}),
    Route("demo", "GET", "A page to try a photo in a browser: overlay, mask, threshold slider, nail count, "
          "timings, polish try-on.", answer_media="text/html"),
    *(Route(f"debug-{name}", "GET", f"{summary} (development.enable_debug_endpoints; an admin key).",
            answer=answer, admin=True, debug=True, template=f"{PREFIX}/debug/{name}",
            errors={**_ACCESS, 403: ["FORBIDDEN"]})
      for name, summary, answer in (
          ("config", "The effective settings as JSON, every key redacted", DebugConfigResponse),
          ("requests", "This API process's recent image requests with their stage times, newest first",
           DebugRequestsResponse),
          ("outputs", "The saved debug output folders (development.save_debug_outputs), newest first, with their "
           "files", DebugOutputsResponse),
      )),
    *(Route(f"v2{suffix}", "GET", summary, template=f"{OIP_PREFIX}{path}", protocol="oip", errors=errors)
      for suffix, path, summary, errors in (
          ("", "", "Open Inference Protocol server metadata: name, version, extensions.", _OIP_ACCESS),
          ("-live", "/health/live", "Open Inference Protocol liveness (as /livez).", {503: ["not live"]}),
          ("-ready", "/health/ready", "Open Inference Protocol readiness (as /readyz).", {503: ["not ready"]}),
          ("-model", f"/models/{MODEL}", "The model's metadata: its inputs and outputs.", _OIP_MODEL),
          ("-model-version", f"/models/{MODEL}/versions/{{version}}", "The model's metadata, at its version.",
           _OIP_MODEL),
          ("-model-ready", f"/models/{MODEL}/ready", "Whether the model is ready.", _OIP_MODEL),
          ("-model-version-ready", f"/models/{MODEL}/versions/{{version}}/ready", "Whether the model is ready, "
           "at its version.", _OIP_MODEL),
          ("-model-config", f"/models/{MODEL}/config", "Triton's model configuration (perf_analyzer reads it).",
           _OIP_MODEL),
          ("-model-version-config", f"/models/{MODEL}/versions/{{version}}/config", "Triton's model "
           "configuration, at the model's version.", _OIP_MODEL),
      )),
    *(Route(f"v2{suffix}", "POST", "Open Inference Protocol infer: input `image` (BYTES [N], encoded photos) or "
            "`pixels` (UINT8 [N, H, W, 3]); outputs `mask`, `probability`, `nail_count`; JSON or binary tensors.",
            template=f"{OIP_PREFIX}{path}", protocol="oip", infer=True, images=True, errors=_OIP_INFER)
      for suffix, path in (("-infer", f"/models/{MODEL}/infer"),
                           ("-model-version-infer", f"/models/{MODEL}/versions/{{version}}/infer"))),
)
ROUTES: dict[str, Route] = {r.name: r for r in _TABLE}
_EXACT = {r.path: r for r in _TABLE if r.template is None or "{" not in r.template}
_TEMPLATED = [r for r in _TABLE if r not in _EXACT.values()]


def served(debug_endpoints: bool) -> list[Route]:
    """The routes a server serves: the debug ones only with development.enable_debug_endpoints."""
    return [r for r in _TABLE if debug_endpoints or not r.debug]


def route_of(path: str) -> Route | None:
    """The route a request path is for (any method), or None."""
    if path == OIP_PREFIX + "/":  # GET /v2, as the mounted app sees it (nailseg/api/known_paths.py)
        path = OIP_PREFIX
    return _EXACT.get(path) or next((r for r in _TEMPLATED if r.pattern.match(path)), None)


def endpoint_label(path: str) -> str | None:
    """The metrics' endpoint label for a request path (None: not an endpoint of ours)."""
    route = route_of(path)
    return route.name if route is not None else None


class PathSet:
    """The request paths whose route has a property (``path in PathSet(lambda r: r.images)``), templates included."""

    def __init__(self, has):
        self.has = has

    def __contains__(self, path: str) -> bool:
        route = route_of(path)
        return route is not None and bool(self.has(route))
