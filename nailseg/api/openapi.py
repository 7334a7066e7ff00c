"""The OpenAPI spec (/docs.json, Swagger UI at /), generated from the route table and the request models.

BentoML generates a spec from its API methods' signatures; OpenApiDocs keeps only its infrastructure
paths (/readyz, /livez, /healthz, /metrics) and writes every endpoint of the route table it serves (the
debug ones only with development.enable_debug_endpoints) itself: the
request body from the route's own model (its name, nullability and `additionalProperties: false` as
pydantic says; required unless the model has no required field), multipart forms with their photo part,
the 200 answer's model or media type, each error status the route can answer with, and a real tiny photo
as the example. So the spec and the server agree (schemathesis checks it with every check,
tests/test_e2e_mutated.py), and client generators get the models' own names.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from nailseg.oip.types import InferenceRequest
from nailseg.api.routes import OIP_PREFIX, PREFIX, Route, served
from nailseg.api.schemas import ErrorResponse, TryOnRequest

TITLE = "Nail segmentation API"
DESCRIPTION = (
    "Segments fingernails in photos with a U-Net. Send a photo (JPEG, PNG or BMP) as base64 JSON "
    "(`/api/unet/segment`, `/segment-batch`) or as a multipart file (`/api/unet/segment-image`, `/mask`) and get "
    "a mask at the photo's own size (PNG, COCO RLE or polygons), optionally confidences, contours and pictures. "
    "Every error answers `{success: false, error: {code, message, details?}, request_id}` with a stable code. "
    "The Open Inference Protocol (KServe v2 REST) is served under `/v2`, with its own error shape "
    "`{error: message}`. Try it in a browser at `/api/unet/demo`."
)
CONTACT = {"name": "nail segmentation serving maintainers (see the project's README and SECURITY.md)"}
LICENSE = {"name": "Apache License 2.0", "identifier": "Apache-2.0"}  # the code's (LICENSE); the model's data: MODEL_CARD.md
TAGS = [{"name": "nail segmentation", "description": "The serving guide's endpoints: masks, batches, state, reload."},
        {"name": "open inference protocol", "description": "KServe v2 REST: what Triton's and KServe's clients speak."},
        {"name": "infrastructure", "description": "BentoML's probes and Prometheus metrics."}]
REF = "#/components/schemas/{model}"
OPENAPI_VERSION = "3.1.0"
PHOTO = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAoHBwgHBgoICAgLCgoLDhgQDg0NDh0VFhEYIx8lJCIfIiEmKzcvJik0KSEiMEExNDk7Pj4+JS5ESUM8SDc9Pjv/2wBDAQoLCw4NDhwQEBw7KCIoOzs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozv/wAARCABAAEADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDI1mOSWVVI5Zgij6mvUQ4TbH2UAD8K881i4t4vFek2WRulukZh6AHj9a7kz4bLAYFc9T3Ujpp3m22UdXjW5uY0YZC/Ma1zOI1HNZkUZubmVjyAhqVpMqFYZ9Kyu0rm1ru3YfqswzZMT/y2/wDZTVlLkhwAMjHXNZepsHFrkEAS/wBDV2GEYBB7UrtvQbS5UZcAay1NkX7sh3D8a2ZNNgv9skhwyrj61iz3Ba5jkZVAR9vDAk1v2jqRweorSCSnYzqNypqR4haW2o6hrkWoy72l85XLkehHSvYJwpY+9YuqJa6AtsqxCS5upliiQD35OPQVszKd5IYfSrrvYjD63DTWC+a395sfgKdGm4YY/dOKyn1W4sQyR6ebgAk7hIF/pVyyvWntlneLymkOShOdv41MklCJUW3UkP1SIfZgcf6shh+dXbWQGIDvisbWdQuYpYIIoUeGcYlcnlMHtWhanoQ3FQ3a1jRK8XcbNYRyW7pHEiMeQQO9T6dIwj2SQsjr3IrlZNU8Ss7bbi2jXcQMQ54qSJ/EUhG/VVXP92Ba6XFN3ONVWouJtXFgt541SeRgy2dmTGhHRmYgn8qWVZRG0hOP7q46ir9+o066tdRbmNcw3DeisRhj7BgPwNPfT3eXBmHk/wB0DnH1pVIt2LoVIwvcghtIzYpvUFmGfzqtJCtvLsI+XGQK3hGoUAAYHSszWoeIZOi7trH0oqQXJ6BQner6lG5iS4ic45VCRT7JD5O7PzKf0q5aQiWc9CDHhsVJFpbwsdspKf3cc/nWahdaHQ6kYtplZrNCnCinw2qHqoq8IiB0pFhKHOK3seeW5olljaORA6OCGUjIINY9pJJpV0ml3LFomz9jmb+If88yf7w7eo+lbzVS1Gyhv7VreYHa3IZTgow6MD2IrSxJKOlNkCtGVZQwPUEVQ028mMklhekfa7cAlgMCVOzj+voa0cZGKLBcZawRQqfLRUz6CpAfmxQg28Gl24bNK1im76sUAEZpCBinlflzTQMmgR//2Q=="  # examples/nails_01.jpg at 64x64, JPEG: a real photo the server answers
EXAMPLES: dict[str, dict[str, Any]] = {
    "segment": {"image_data": PHOTO, "threshold": 0.5, "return_contours": True, "mask_format": "png"},
    "segment-batch": {"images": [{"image_data": PHOTO}, {"image_data": PHOTO}], "threshold": 0.5},
    "initialize": {"force_reload": False, "warm_up": True},
    # a file part cannot be shown in JSON: the photo's part is named
    "segment-image": {"image": "(photo.jpg: a JPEG, PNG or BMP file)", "threshold": 0.5, "mask_format": "coco_rle"},
    "mask": {"image": "(photo.jpg: a JPEG, PNG or BMP file)", "threshold": 0.5, "overlay": False},
    "tryon": {"image": "(photo.jpg: a JPEG, PNG or BMP file)",
              **{name: field.examples[0] if field.examples else field.default  # the model's own defaults
                 for name, field in TryOnRequest.model_fields.items() if field.examples or field.default is not None}},
    "v2-infer": {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 2, 2, 3], "data": [0] * 12}],
                 "outputs": [{"name": "mask"}]},
}
BINARY_BODY = ("JSON tensors; or the binary tensor data extension: with an `Inference-Header-Content-Length` header "
               "the body is a JSON header of that many bytes, then each binary input's bytes "
               "(docs/inference-protocol.md)")
_OIP_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}


def project_version() -> str:
    try:
        return version("nail-segmentation-serving")
    except PackageNotFoundError:
        return "unknown"


def _models(routes: list[Route]) -> list[tuple[type[BaseModel], str]]:
    found: dict[type[BaseModel], str] = {ErrorResponse: "serialization", InferenceRequest: "validation"}
    for r in routes:
        for model, mode in ((r.body, "validation"), (r.form, "validation"), (r.answer, "serialization")):
            if model is not None:
                found.setdefault(model, mode)
    return list(found.items())


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _requires_fields(model: type[BaseModel]) -> bool:
    return any(f.is_required() for f in model.model_fields.values())


def _form_schema(model: type[BaseModel]) -> dict[str, Any]:
    fields = model.model_json_schema()
    return {"type": "object", "required": ["image", *fields.get("required", [])], "additionalProperties": False,
            "properties": {"image": {"type": "string", "format": "binary",
                                     "description": "the photo: a JPEG, PNG or BMP file"}, **fields["properties"]}}


def _request_body(route: Route) -> dict[str, Any] | None:
    if route.body is not None:
        media = {"schema": _ref(route.body)}
        if route.name in EXAMPLES:
            media["example"] = EXAMPLES[route.name]
        return {"required": _requires_fields(route.body), "content": {"application/json": media}}
    if route.form is not None:
        return {"required": True, "content": {"multipart/form-data": {"schema": _form_schema(route.form),
                                                                      "example": EXAMPLES[route.name]}}}
    if route.infer:
        # the binary tensor data extension is the same operation with an Inference-Header-Content-Length
        # header, which OpenAPI cannot tie to a media type: its body is described, not offered
        return {"required": True, "description": BINARY_BODY, "content": {
            "application/json": {"schema": _ref(InferenceRequest), "example": EXAMPLES["v2-infer"]}}}
    return None


def _answer(route: Route) -> dict[str, Any]:
    if route.answer is not None:
        return {"description": "OK", "content": {"application/json": {"schema": _ref(route.answer)}}}
    if route.protocol == "oip":
        return {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}},
                                                 **({"application/octet-stream": {"schema": {
                                                     "type": "string", "format": "binary"}}} if route.infer else {})}}
    binary = {"type": "string"} if route.answer_media == "text/html" else {"type": "string", "format": "binary"}
    return {"description": "OK", "content": {media: {"schema": binary} for media in (route.answer_media,
                                                                                     *route.answer_also)}}


def _errors(route: Route) -> dict[str, Any]:
    schema = _OIP_ERROR if route.protocol == "oip" else _ref(ErrorResponse)
    return {str(status): {"description": ("error codes: " if route.protocol == "unet" else "") + ", ".join(codes),
                          "content": {"application/json": {"schema": schema}}}
            for status, codes in sorted(route.errors.items())}


def _operation(route: Route) -> dict[str, Any]:
    responses = {"200": _answer(route), **_errors(route)}
    if route.name == "health":
        responses["503"] = {**responses["200"], "description": "not healthy (same body, service_healthy false)"}
    op: dict[str, Any] = {"tags": ["open inference protocol" if route.protocol == "oip" else "nail segmentation"],
                          "summary": route.summary, "operationId": route.name.replace("-", "_"),
                          "responses": responses}
    params = [name for name in ("version",) if "{" + name + "}" in route.path]
    if params:
        op["parameters"] = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in params]
    body = _request_body(route)
    if body is not None:
        op["requestBody"] = body
    return op


def build(bentoml_spec: dict[str, Any], max_batch_images: int, debug_endpoints: bool = False) -> dict[str, Any]:
    """The whole spec: BentoML's infrastructure paths, then every route of the table the server serves."""
    routes = served(debug_endpoints)
    _, defs = models_json_schema(_models(routes), ref_template=REF)
    schemas = defs["$defs"]
    images = schemas["SegmentBatchRequest"]["properties"]["images"]
    images["minItems"], images["maxItems"] = 1, max_batch_images
    paths = {p: {m: {**op, "tags": ["infrastructure"]} for m, op in v.items()}
             for p, v in bentoml_spec.get("paths", {}).items() if not p.startswith((PREFIX, OIP_PREFIX))}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    # 3.1: the schemas are pydantic's JSON Schema 2020-12 (prefixItems, null in anyOf), which 3.0 does not have
    return {"openapi": OPENAPI_VERSION,
            # BentoML's Swagger page hides info.title: the description's heading names the service there
            "info": {"title": TITLE, "version": project_version(), "description": f"## {TITLE}\n\n{DESCRIPTION}",
                     "contact": CONTACT,
                     "license": LICENSE},
            "tags": TAGS, "paths": paths, "components": {"schemas": schemas}}


class OpenApiDocs:
    """ASGI middleware: /docs.json answered with build (everything else untouched)."""

    PATH = "/docs.json"

    def __init__(self, app, *, max_batch_images: int, debug_endpoints: bool = False):
        self.app = app
        self.max_batch_images = max_batch_images
        self.debug_endpoints = debug_endpoints

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
            body = json.dumps(build(json.loads(body), self.max_batch_images, self.debug_endpoints)).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
