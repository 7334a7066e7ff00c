"""What BentoML's generated OpenAPI spec (/docs.json) cannot say by itself, added to it.

BentoML writes each API's request schema (with the pydantic field descriptions and bounds) and its
200 answer. This module adds only: a short description of the service, the GET endpoints (they are a
mounted Starlette app, which BentoML does not document), the error answers each endpoint can give in
the service's own error shape (BentoML lists its own exception bodies instead), the batch limit from
config, one example request per endpoint, and standard types for file fields. ``OpenApiDocs`` applies it to every /docs.json answer.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import models_json_schema

from nailseg.api.schemas import ErrorResponse, HealthResponse, ModelInfoResponse

DESCRIPTION = (
    "Segments fingernails in photos with a U-Net. Send a photo (JPEG, PNG or BMP) as base64 JSON "
    "(`/api/unet/segment`, `/segment-batch`) or as a multipart file (`/api/unet/segment-image`, `/mask`) and get "
    "a mask at the photo's own size (PNG, COCO RLE or polygons), optionally confidences, contours and pictures. "
    "Every error answers `{success: false, error: {code, message, details?}, request_id}` with a stable code. "
    "Try it in a browser at `/api/unet/demo`."
)
REF = "#/components/schemas/{model}"
PREFIX = "/api/unet"

# The error codes (nailseg/errors.py, and the access layer's keys and limits) each endpoint can answer with.
_ACCESS = {401: ["UNAUTHORIZED"], 429: ["RATE_LIMITED"]}
_SERVER = {503: ["MODEL_NOT_READY", "RUNNER_UNAVAILABLE", "OVERLOADED"]}
_IMAGE = {400: ["EMPTY_IMAGE", "NOT_AN_IMAGE", "TRUNCATED_IMAGE"], 413: ["BODY_TOO_LARGE", "IMAGE_TOO_LARGE"],
          415: ["UNSUPPORTED_MEDIA_TYPE", "UNSUPPORTED_FORMAT"], 422: ["INVALID_REQUEST"]}
_JSON_IMAGE = {**_IMAGE, 400: ["INVALID_JSON", "INVALID_BASE64", *_IMAGE[400]]}
ERRORS: dict[str, dict[int, list[str]]] = {
    "/segment": {**_ACCESS, **_SERVER, **_JSON_IMAGE, 403: ["FEATURE_DISABLED"]},
    "/segment-image": {**_ACCESS, **_SERVER, **_IMAGE, 403: ["FEATURE_DISABLED"]},
    "/mask": {**_ACCESS, **_SERVER, **_IMAGE},
    "/segment-batch": {**_ACCESS, **_SERVER, **_JSON_IMAGE, 403: ["FEATURE_DISABLED"],
                       413: [*_JSON_IMAGE[413], "BATCH_TOO_LARGE", "BATCH_PIXELS_TOO_LARGE"],
                       422: ["INVALID_REQUEST", "EMPTY_BATCH"]},
    "/initialize": {**_ACCESS, **_SERVER, 400: ["INVALID_JSON"], 403: ["FORBIDDEN"], 413: ["BODY_TOO_LARGE"],
                    415: ["UNSUPPORTED_MEDIA_TYPE"], 422: ["INVALID_REQUEST"]},
    "/model-info": {**_ACCESS, **_SERVER},
    "/health": {**_ACCESS},
    "/demo": {},
}
_PHOTO = "/9j/4AAQSkZJRgABAQ...(base64 JPEG)"
EXAMPLES: dict[str, dict[str, Any]] = {
    "/segment": {"image_data": _PHOTO, "threshold": 0.5, "return_contours": True, "mask_format": "png"},
    "/segment-image": {"image": "(the photo file)", "threshold": 0.5, "mask_format": "coco_rle"},
    "/mask": {"image": "(the photo file)", "threshold": 0.5, "overlay": False},
    "/segment-batch": {"images": [{"image_data": _PHOTO}, {"image_data": _PHOTO}], "threshold": 0.5},
    "/initialize": {"force_reload": False, "warm_up": True},
}
GETS = {
    "/health": (HealthResponse, "Real state of the model and runner: 200 when it can serve, 503 (same body) "
                                "when it cannot."),
    "/model-info": (ModelInfoResponse, "The served model: tag, architecture, checkpoint, preprocessing, device, "
                                       "precision and backend."),
    "/demo": (None, "A page to try a photo in a browser: overlay, mask, threshold slider, nail count, timings."),
}


def _error_responses(errors: dict[int, list[str]]) -> dict[str, Any]:
    schema = {"$ref": REF.format(model="ErrorResponse")}
    return {str(status): {"description": "error codes: " + ", ".join(codes),
                          "content": {"application/json": {"schema": schema}}}
            for status, codes in sorted(errors.items())}


def augment(spec: dict[str, Any], max_batch_images: int) -> dict[str, Any]:
    spec.setdefault("info", {})["description"] = DESCRIPTION
    _, defs = models_json_schema([(m, "serialization") for m in (ErrorResponse, HealthResponse, ModelInfoResponse)],
                                 ref_template=REF)
    spec.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
    paths = spec.setdefault("paths", {})
    for route, (model, text) in GETS.items():
        ok = {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}} if model is None else
              {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}}
        responses = {"200": ok, **_error_responses(ERRORS[route])}
        if route == "/health":
            responses["503"] = {**ok, "description": "not healthy (same body, service_healthy false)"}
        paths[PREFIX + route] = {"get": {"tags": ["Service APIs"], "description": text, "responses": responses,
                                         "operationId": f"unet_api__{route.strip('/').replace('-', '_')}"}}
    for route, errors in ERRORS.items():
        operation = paths.get(PREFIX + route, {}).get("post")
        if operation is None:
            continue
        ok = operation["responses"].get("200") or operation["responses"].get(200)
        operation["responses"] = {"200": ok, **_error_responses(errors)}
        for media in operation.get("requestBody", {}).get("content", {}).values():
            media["example"] = EXAMPLES[route]
    _fix_file_types(spec["components"]["schemas"])
    batch = paths.get(PREFIX + "/segment-batch", {}).get("post")
    if batch is not None:
        for media in batch["requestBody"]["content"].values():
            _with_batch_limit(media.get("schema", {}), spec["components"]["schemas"], max_batch_images)
    return spec


def _fix_file_types(node: Any) -> None:
    """BentoML types file fields ``"type": "file"`` in components, which OpenAPI 3.0 has not: a binary string."""
    if isinstance(node, dict):
        if node.get("type") == "file":
            node.update({"type": "string", "format": "binary"})
            node.pop("content_type", None)
        for value in node.values():
            _fix_file_types(value)
    elif isinstance(node, list):
        for value in node:
            _fix_file_types(value)


def _with_batch_limit(schema: dict[str, Any], components: dict[str, Any], limit: int) -> None:
    """maxItems on the batch's ``images`` (the limit is config, so the pydantic model cannot carry it)."""
    ref = schema.get("$ref")
    target = components.get(ref.rsplit("/", 1)[-1], {}) if ref else schema
    images = target.get("properties", {}).get("images")
    if images is not None:
        images["minItems"], images["maxItems"] = 1, limit


class OpenApiDocs:
    """ASGI middleware: passes /docs.json through ``augment`` (everything else untouched)."""

    PATH = "/docs.json"

    def __init__(self, app, *, max_batch_images: int):
        self.app = app
        self.max_batch_images = max_batch_images

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != self.PATH or scope["method"] != "GET":
            return await self.app(scope, receive, send)
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        if start.get("status") == 200:
            body = json.dumps(augment(json.loads(body), self.max_batch_images)).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
