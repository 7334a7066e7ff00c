"""The route table: every endpoint of the API, declared once.

The guard (keys, limits, body validation), the metrics, the OpenAPI additions and the demo page read
it; service.py declares each handler with ``route=ROUTES[name].path``. Adding an endpoint is one entry
here plus its handler (tests/test_routes.py checks that every entry is served, documented and counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from nailseg.api.schemas import (
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
)

PREFIX = "/api/unet"

# The error codes (nailseg/errors.py, and the guard's keys and limits) each kind of endpoint can answer with.
_ACCESS = {401: ["UNAUTHORIZED"], 429: ["RATE_LIMITED"]}
_SERVER = {503: ["MODEL_NOT_READY", "RUNNER_UNAVAILABLE", "OVERLOADED"]}
_IMAGE = {400: ["EMPTY_IMAGE", "NOT_AN_IMAGE", "TRUNCATED_IMAGE"], 413: ["BODY_TOO_LARGE", "IMAGE_TOO_LARGE"],
          415: ["UNSUPPORTED_MEDIA_TYPE", "UNSUPPORTED_FORMAT"], 422: ["INVALID_REQUEST"]}
_JSON_IMAGE = {**_IMAGE, 400: ["INVALID_JSON", "INVALID_BASE64", *_IMAGE[400]]}


@dataclass(frozen=True)
class Route:
    name: str  # the metrics' endpoint label; the path under PREFIX
    method: Literal["GET", "POST"]
    summary: str
    body: type[BaseModel] | None = None  # a JSON body, parsed and validated once, by the guard
    form: type[BaseModel] | None = None  # the form fields of a multipart body (the photo is the part `image`)
    answer: type[BaseModel] | None = None  # the 200 answer's JSON model (None: not JSON)
    answer_media: str = "application/json"
    admin: bool = False  # needs an admin key when keys are configured
    images: bool = False  # its images count against limits.max_inflight_images
    errors: dict[int, list[str]] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"{PREFIX}/{self.name}"


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
    Route("demo", "GET", "A page to try a photo in a browser: overlay, mask, threshold slider, nail count, timings.",
          answer_media="text/html"),
)
ROUTES: dict[str, Route] = {r.name: r for r in _TABLE}
BY_PATH: dict[str, Route] = {r.path: r for r in _TABLE}
