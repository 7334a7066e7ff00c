"""The Open Inference Protocol's names, its JSON bodies as pydantic models, a parsed infer request
(``InferRequest``), and its error (``OipError``, the shape ``{"error": "..."}``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ("binary_tensor_data", "parameters", "model_configuration")

IMAGE = "image"
PIXELS = "pixels"
MASK = "mask"
PROBABILITY = "probability"
NAIL_COUNT = "nail_count"
INPUT_NAMES = (IMAGE, PIXELS)
OUTPUT_NAMES = (MASK, PROBABILITY, NAIL_COUNT)

# The protocol's parameter values: bool, int64, double or string (strict: no "true" for a bool).
ParameterValue = StrictBool | StrictInt | StrictFloat | str
Parameters = dict[str, ParameterValue]


class OipError(Exception):
    """A request the protocol's rules refuse: `status` is the HTTP status, `message` what to tell the client."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status

    def body(self) -> bytes:
        return error_body(self.message)


def error_body(message: str) -> bytes:
    """The protocol's error shape: `{"error": "<message>"}` (sent as `application/json`)."""
    return orjson.dumps({"error": message})


class _Body(BaseModel):
    # Unknown keys are ignored, as Triton and KServe ignore them (KServe's client adds model_name, some
    # clients add model_version); the keys the protocol defines are typed strictly.
    model_config = ConfigDict(extra="ignore", strict=True)


class RequestInput(_Body):
    """$request_input: `data` is kept as parsed (validated by the codec, never element by element here)."""

    name: str
    shape: list[StrictInt]
    datatype: str
    parameters: Parameters | None = None
    data: Any = None


class RequestOutput(_Body):
    """$request_output."""

    name: str
    parameters: Parameters | None = None


class InferenceRequest(_Body):
    """$inference_request."""

    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    """$response_output: `data` for JSON tensors, `parameters.binary_data_size` for binary ones."""

    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    """$inference_response (KServe's client requires `model_name`)."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class ErrorResponse(BaseModel):
    error: str


class MetadataTensor(BaseModel):
    """$metadata_tensor: -1 for a dimension of variable size."""

    name: str
    datatype: str
    shape: list[int]
    parameters: Parameters | None = None


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: Parameters | None = None


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    """One parsed infer request: exactly one of `images` (encoded photos) or `pixels` (uint8 [N, H, W, 3])."""

    id: str | None
    images: list[bytes] | None
    pixels: np.ndarray | None
    threshold: float | None
    outputs: tuple[RequestedOutput, ...]
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def input_name(self) -> Literal["image", "pixels"]:
        return IMAGE if self.images is not None else PIXELS

    @property
    def count(self) -> int:
        return len(self.images) if self.images is not None else int(self.pixels.shape[0])

    def wants(self, name: str) -> bool:
        """Whether the answer must hold output `name` (`probability` and `nail_count` cost work: ask first)."""
        return any(o.name == name for o in self.outputs)
