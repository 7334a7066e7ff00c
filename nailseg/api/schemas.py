"""Request and response bodies of the HTTP API (../shared/spec/unet_serving_guide.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from nailseg.images.results import (
    CocoRle,
    ConfidenceScores,
    Contour,
    MaskFormat,
    NailGeometry,
    Visualizations,
)
from nailseg.model.spec import Int8Gate, StoredModelInfo

SUPPORTED_FORMATS = ["JPEG", "PNG", "BMP"]


class _Request(BaseModel):
    # strict: "0.5" for a number or "true" for a flag is a 422 like any other wrong type (ints still count as numbers)
    model_config = ConfigDict(extra="forbid", strict=True)


class SegmentOptions(_Request):
    threshold: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False,
                                    description="mask cut-off; config.yaml's inference.threshold when absent")
    return_confidence: StrictBool = Field(False, description="add mean nail probabilities (confidence_scores)")
    return_contours: StrictBool = Field(False, description="add each nail's outline, area and bounding box "
                                        "(contours), largest first")
    return_visualizations: StrictBool = Field(False, description="add an overlay and a heatmap picture "
                                              "(visualizations, base64 PNG)")
    return_nails: StrictBool = Field(False, description="add each nail's geometry (nails), largest first: area, "
                                     "bounding box, centroid, outline, principal axis, mean probability")
    mask_format: MaskFormat = Field("png", description="how the mask is returned: `png` (base64 PNG in mask_data), "
                                    "`coco_rle` (COCO run-length encoding in mask_rle, as pycocotools writes it) or "
                                    "`polygons` (outer outlines in polygons, COCO's flat [x1, y1, x2, y2, ...])")


class MaskRequest(_Request):
    """The form fields of POST /mask (besides the image file)."""

    threshold: float | None = SegmentOptions.model_fields["threshold"]
    overlay: StrictBool = Field(False, description="return the photo with the mask tinted over it instead of the mask")


class TryOnRequest(_Request):
    """The form fields of POST /tryon (besides the image file)."""

    color: str = Field(pattern=r"^#[0-9A-Fa-f]{6}$", description="the polish colour, `#RRGGBB`",
                       examples=["#C8143C"])
    opacity: float = Field(0.85, ge=0.0, le=1.0, allow_inf_nan=False,
                           description="how much the polish covers the nail: 0 (none) to 1")
    finish: Literal["gloss", "matte"] = Field("gloss", description="`gloss` keeps the nail's highlights and adds "
                                              "one along its long axis; `matte` flattens them")
    threshold: float | None = SegmentOptions.model_fields["threshold"]
    output_format: Literal["png", "jpeg"] = Field("png", description="the answer's format: `png` (every pixel "
                                                  "away from the nails as decoded) or `jpeg`")


class SegmentRequest(SegmentOptions):
    image_data: str = Field(min_length=1, description="base64 JPEG, PNG or BMP (a data: URL prefix is allowed)")


class BatchImage(_Request):
    image_data: str = SegmentRequest.model_fields["image_data"]


class SegmentBatchRequest(SegmentOptions):
    images: list[BatchImage] = Field(description="the images, at most limits.max_batch_images (config.yaml) a "
                                     "request; the options apply to each")


class InitializeRequest(_Request):
    force_reload: StrictBool = False
    warm_up: StrictBool = True


class ModelInfoBrief(BaseModel):
    model_name: str = "unet"
    model_variant: str
    device: str


class _Response(BaseModel):
    processing_time_ms: float = 0.0
    model_info: ModelInfoBrief | None = None
    request_id: str = ""


class SegmentResponse(_Response):
    success: bool = True
    mask_data: str | None = Field(None, description="base64 PNG, 0 = background, 255 = nail, at the input's width "
                                  "and height (mask_format `png`, the default)")
    mask_rle: CocoRle | None = Field(None, description="the mask as COCO RLE (mask_format `coco_rle`)")
    polygons: list[list[int]] | None = Field(None, description="each nail's outline as [x1, y1, x2, y2, ...] in "
                                             "pixels, largest first (mask_format `polygons`)")
    confidence_scores: ConfidenceScores | None = None
    contours: list[Contour] | None = None
    nails: list[NailGeometry] | None = Field(None, description="each nail's geometry, largest first "
                                             "(return_nails)")
    visualizations: Visualizations | None = None


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(_Response):
    success: bool = False
    error: ErrorDetail
    index: int | None = Field(None, description="position in the batch, for a batch entry's error")


class SegmentBatchResponse(_Response):
    success: bool = True
    results: list[SegmentResponse | ErrorResponse]
    total_processing_time_ms: float
    batch_size: int


class InitializeResponse(_Response):
    success: bool
    message: str
    initialization_time_ms: float
    service_ready: bool
    model_tag: str | None = None


class SkippedModel(BaseModel):
    """A store entry the runner would not serve, and why (corrupt, NaN weights, failed validation...)."""

    model_tag: str
    reason: str


class RunnerStatus(BaseModel):
    """What the runner reports about itself (runner -> API service)."""

    model_loaded: bool
    model_tag: str | None = None
    model: StoredModelInfo | None = None
    device: str
    precision: str | None = None
    precision_reason: str | None = None
    backend: str | None = None
    test_time_flip: bool | None = None
    gpu_available: bool
    pools_ready: bool
    memory_usage: dict[str, float | int] = {}
    last_health_check: float | None = None
    last_health_check_ok: bool | None = None
    error: str | None = None
    skipped_models: list[SkippedModel] = []  # store entries passed over, newest first


class HealthResponse(_Response):
    success: bool = True  # false (with ``error``) when unhealthy: the 503 keeps this body
    service_healthy: bool
    model_loaded: bool
    memory_pools_ready: bool
    gpu_available: bool
    device: str | None = None
    last_health_check: str | None
    memory_usage: dict[str, float | int]
    capabilities: list[str]
    error: str | None = None
    skipped_models: list[SkippedModel] = []  # store entries the runner would not serve, and why


class ModelInfoResponse(_Response):
    model_name: str = "unet"
    model_tag: str
    model_variant: str
    checkpoint_path: str
    checkpoint_sha256: str
    model_parameters: int
    input_shape: list[int]
    output_shape: list[int]
    device: str
    precision: str | None
    precision_reason: str | None = None  # why this precision, e.g. "auto: int8: on this CPU it agrees with fp32 (...)"
    int8_gate: Int8Gate | None = None  # the int8 model's agreement with fp32 at import, where it has one
    backend: str | None
    test_time_flip: bool | None  # inference.test_time_flip: the mirror image segmented too and averaged
    architecture_details: dict[str, Any]
    preprocessing_config: dict[str, Any]
    training: dict[str, Any]
    supported_formats: list[str] = SUPPORTED_FORMATS
    skipped_models: list[SkippedModel] = []


class VersionResponse(_Response):
    """GET /api/unet/version."""

    success: bool = True
    version: str = Field(description="this service's package version (nail-segmentation-serving)")
    bentoml_version: str = Field(description="the BentoML version serving it")
    model_tag: str = Field(description="the model store entry the runner serves, `unet:<version>`")


class DebugConfigResponse(_Response):
    """GET /api/unet/debug/config."""

    settings: dict[str, Any] = Field(description="the effective settings (config.yaml, UNET_* variables, "
                                     "defaults), by section; every key shown as **********")


class DebugRequest(BaseModel):
    """One image request as the API process served it."""

    request_id: str
    endpoint: str = Field(description="the route's name, as the metrics label it")
    received_at: str = Field(description="when the API took it (UTC, ISO 8601)")
    status: int
    images: int
    stages_ms: dict[str, float] = Field(description="milliseconds per stage it reached: decode, runner, encode")
    total_ms: float = Field(description="from when the guard took it to its answer")


class DebugRequestsResponse(_Response):
    """GET /api/unet/debug/requests."""

    requests: list[DebugRequest] = Field(description="this API process's most recent image requests, newest "
                                         "first (a bounded ring; each API worker keeps its own)")


class DebugOutput(BaseModel):
    """One request's folder of debug outputs."""

    name: str = Field(description="<UTC time>-<request id>")
    request_id: str
    files: list[str] = Field(description="paths in the folder: input.<ext>, mask.png, overlay.png (a batch: "
                             "<index>/input.<ext>, ...)")


class DebugOutputsResponse(_Response):
    """GET /api/unet/debug/outputs."""

    saving: bool = Field(description="development.save_debug_outputs")
    directory: str = Field(description="development.debug_output_dir")
    max_outputs: int = Field(description="development.max_debug_outputs: request folders kept")
    outputs: list[DebugOutput] = Field(description="the request folders there, newest first")
