"""The Open Inference Protocol (KServe v2 REST, what Triton, KServe, OpenVINO Model Server and MLServer speak):
the bodies of its requests and answers, without any HTTP framework and without torch.

The routes (wired in the route table) do the HTTP; this module turns bytes into typed inputs and results
into bytes:

- `parse_infer_request(body, header_length, max_images=...)` reads `POST /v2/models/unet/infer` in either
  encoding the protocol allows: plain JSON tensors, or the binary tensor data extension (a JSON header of
  `Inference-Header-Content-Length` bytes, then each binary input's bytes in the order of `inputs`, each
  input saying its size in `parameters.binary_data_size`; a BYTES element is a 4-byte little-endian length,
  then that many bytes). Exactly one input is taken:
  * `image`, `BYTES` `[N]`: encoded photos (JPEG, PNG, BMP) -> `InferRequest.images: list[bytes]`;
  * `pixels`, `UINT8` `[N, H, W, 3]`: decoded RGB -> `InferRequest.pixels: np.ndarray` (uint8; a read-only
    view on the body when sent binary).
  Request `parameters` may carry `threshold` (a number in [0, 1]) and `binary_data_output` (bool); requested
  `outputs` name `mask`, `probability` or `nail_count`, each with an optional `parameters.binary_data`.
  With no `outputs`, the answer holds `mask` alone (`probability` and `nail_count` are returned only when
  asked for by name).
- `encode_infer_response(request, ...)` writes the answer: `mask` (`BYTES` `[N]` PNGs for `image`, `UINT8`
  `[N, H, W]` 0/1 for `pixels`), `probability` (`FP32` `[N, h, w]`), `nail_count` (`INT32` `[N]`); each as JSON
  `data` or as binary after the JSON header, as the request asked (an output's `binary_data`, else the
  request's `binary_data_output`, else JSON: tritonclient asks binary by default), with the
  `Inference-Header-Content-Length` header when any output is binary.
- `server_metadata`, `model_metadata`, `model_config` (Triton's model configuration, which perf_analyzer
  reads), and the small health bodies build the JSON of the other routes.
- Every malformed request raises `OipError` (an HTTP status and a message); `OipError.body()` is the
  protocol's error shape, `{"error": "..."}`.

Photos in JSON. In the protocol a `BYTES` element in JSON is a string, and a photo is not text (tritonclient
and KServe's SDK refuse to put non-UTF-8 bytes in JSON at all). So `image` in JSON is accepted only when the
input declares `"parameters": {"content_type": "base64"}` (MLServer's convention for base64 `BYTES`), each
element being one photo in standard base64; a JSON `image` without it is a 400 that says so. The binary
tensor data extension is the way meant for photos: no base64, and what tritonclient sends by default.
Symmetrically, a `mask` of PNGs returned as JSON is base64 text, and its output says
`"parameters": {"content_type": "base64"}`.

For the routes that use it:
- errors go out as `Content-Type: application/json` exactly (KServe's client compares the whole header
  before it reads `error`); `EncodedResponse.headers` gives an answer's Content-Type and header length;
- `EXTENSIONS` names `model_configuration`: serve `model_config` at `/v2/models/unet/config` and at
  `/v2/models/unet/versions/{v}/config` (perf_analyzer's `-x v` reads metadata and config there);
- KServe's client reads `{"live": ...}` and `{"ready": ...}` from the health routes (`live_body`,
  `ready_body`); tritonclient reads only the status.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
import orjson
import pybase64
from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
)

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


# ---------------------------------------------------------------- the JSON of an inference request


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


# ---------------------------------------------------------------- parsed requests


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


def parse_header_length(value: str | int | None, body_size: int) -> int | None:
    """The `Inference-Header-Content-Length` header: None when absent, else the JSON header's size in bytes."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit():
            raise OipError(f"{HEADER_LENGTH} must be a whole number of bytes, not {value!r}")
        value = int(text)
    if value < 0 or value > body_size:
        raise OipError(f"{HEADER_LENGTH} is {value} but the body has {body_size} bytes")
    return value


def decode_content_encoding(body: bytes, encoding: str | None, max_size: int) -> bytes:
    """Undo a request's `Content-Encoding` (tritonclient's request_compression_algorithm: gzip or deflate),
    refusing with 413 what inflates past `max_size` bytes (the body limit: a small deflate bomb stays small)."""
    name = (encoding or "identity").strip().lower()
    if name == "identity":
        return body
    if name not in ("gzip", "deflate"):
        raise OipError(f"Content-Encoding {encoding!r} is not supported (gzip, deflate or none)", 415)
    inflater = zlib.decompressobj(wbits=31 if name == "gzip" else 15)
    try:
        out = inflater.decompress(body, max_size + 1)
    except zlib.error as exc:
        raise OipError(f"the body is not valid {name} data ({exc})") from None
    if len(out) > max_size or inflater.unconsumed_tail:
        raise OipError(f"the body inflates past {max_size} bytes", 413)
    if not inflater.eof:
        raise OipError(f"the {name} body is truncated")
    return out


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _threshold(params: dict[str, Any]) -> float | None:
    value = params.get("threshold")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise OipError(f"parameters.threshold must be a number from 0 to 1, not {value!r}")
    return float(value)


def _flag(params: dict[str, Any] | None, key: str, where: str) -> bool | None:
    if not params or key not in params:
        return None
    value = params[key]
    if not isinstance(value, bool):
        raise OipError(f"{where}.{key} must be true or false, not {value!r}")
    return value


def _refuse_shared_memory(params: dict[str, Any] | None, where: str) -> None:
    if params and any(k.startswith("shared_memory") for k in params):
        raise OipError(f"{where}: shared memory is not supported over HTTP here; send the tensor in the body")


def _requested_outputs(request: InferenceRequest) -> tuple[RequestedOutput, ...]:
    default_binary = _flag(request.parameters, "binary_data_output", "parameters") or False
    if request.outputs is None:
        return (RequestedOutput(MASK, default_binary),)
    if not request.outputs:
        raise OipError("outputs is empty: name at least one of " + ", ".join(OUTPUT_NAMES) + " (or leave it out)")
    seen: list[RequestedOutput] = []
    for i, out in enumerate(request.outputs):
        if out.name not in OUTPUT_NAMES:
            raise OipError(f"unknown output {out.name!r}: this model has " + ", ".join(OUTPUT_NAMES))
        if any(s.name == out.name for s in seen):
            raise OipError(f"output {out.name!r} is requested twice")
        _refuse_shared_memory(out.parameters, f"outputs[{i}]")
        if out.parameters and "classification" in out.parameters:
            raise OipError(f"outputs[{i}]: the classification extension is not supported")
        binary = _flag(out.parameters, "binary_data", f"outputs[{i}].parameters")
        seen.append(RequestedOutput(out.name, default_binary if binary is None else binary))
    return tuple(seen)


def _split_bytes_elements(raw: memoryview, count: int, name: str) -> list[bytes]:
    """A binary BYTES tensor: `count` elements, each a 4-byte little-endian length then its bytes, filling `raw`."""
    out: list[bytes] = []
    pos, end = 0, len(raw)
    while pos < end:
        if end - pos < 4:
            raise OipError(f"input {name!r}: {end - pos} stray bytes after element {len(out)} "
                           "(each BYTES element starts with a 4-byte length)")
        size = int.from_bytes(raw[pos:pos + 4], "little")
        pos += 4
        if size > end - pos:
            raise OipError(f"input {name!r}: element {len(out)} declares {size} bytes but {end - pos} remain "
                           "in its binary_data_size")
        out.append(bytes(raw[pos:pos + size]))
        pos += size
        if len(out) > count:
            break
    if len(out) > count:
        raise OipError(f"input {name!r}: shape [{count}] but its binary data holds more than {count} elements")
    if len(out) < count:
        raise OipError(f"input {name!r}: shape [{count}] but its binary data holds {len(out)} elements")
    return out


def _json_images(inp: RequestInput, count: int) -> list[bytes]:
    content_type = (inp.parameters or {}).get("content_type")
    if content_type != "base64":
        raise OipError(
            f"input {IMAGE!r} in JSON must declare parameters.content_type \"base64\" (each element one photo in "
            "base64): a photo is not text. Or send it binary (the binary tensor data extension, tritonclient's "
            "default)")
    data = inp.data
    if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
        raise OipError(f"input {IMAGE!r}: data must be a list of base64 strings")
    if len(data) != count:
        raise OipError(f"input {IMAGE!r}: shape [{count}] but data holds {len(data)} elements")
    images = []
    for i, text in enumerate(data):
        try:
            images.append(pybase64.b64decode(text, validate=True))
        except (ValueError, TypeError):
            raise OipError(f"input {IMAGE!r}: element {i} is not valid base64") from None
    return images


def _json_pixels(data: Any, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(data, list):
        raise OipError(f"input {PIXELS!r}: data must be a JSON array of integers")
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise OipError(f"input {PIXELS!r}: data is not a regular array of integers") from None
    if arr.dtype.kind not in "iu":
        raise OipError(f"input {PIXELS!r}: data must hold integers from 0 to 255 (UINT8)")
    if arr.size != math.prod(shape):
        raise OipError(f"input {PIXELS!r}: shape {list(shape)} needs {math.prod(shape)} values, data has {arr.size}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 255):
        raise OipError(f"input {PIXELS!r}: a UINT8 value must be from 0 to 255")
    return arr.astype(np.uint8).reshape(shape)


def parse_infer_request(body: bytes, header_length: str | int | None = None, *, max_images: int,
                        max_pixels: int | None = None) -> InferRequest:
    """Parse an infer request's body. `header_length` is the `Inference-Header-Content-Length` header (None
    when absent: the whole body is JSON). `max_images` caps N; `max_pixels` (optional) caps H * W of `pixels`
    (413 past it, like the service's pixel limit on photos)."""
    header_size = parse_header_length(header_length, len(body))
    view = memoryview(body)
    head = view if header_size is None else view[:header_size]
    try:
        raw_json = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        hint = f" (binary data follows the JSON? send {HEADER_LENGTH})" if header_size is None else ""
        raise OipError(f"the request is not valid JSON: {exc}{hint}") from None
    if not isinstance(raw_json, dict):
        raise OipError("the request must be a JSON object")
    try:
        request = InferenceRequest.model_validate(raw_json)
    except ValidationError as exc:
        raise OipError(_validation_message(exc)) from None

    params = dict(request.parameters or {})
    _refuse_shared_memory(params, "parameters")
    threshold = _threshold(params)
    outputs = _requested_outputs(request)

    if not request.inputs:
        raise OipError(f"inputs is empty: send {IMAGE!r} (BYTES [N]) or {PIXELS!r} (UINT8 [N, H, W, 3])")
    names = [i.name for i in request.inputs]
    for name in names:
        if name not in INPUT_NAMES:
            raise OipError(f"unknown input {name!r}: this model takes {IMAGE!r} (BYTES [N]) or "
                           f"{PIXELS!r} (UINT8 [N, H, W, 3])")
    if len(names) != 1:
        raise OipError(f"send one input, {IMAGE!r} or {PIXELS!r}, not {len(names)} ({', '.join(names)})")
    inp = request.inputs[0]
    _refuse_shared_memory(inp.parameters, f"input {inp.name!r}")

    expected = "BYTES" if inp.name == IMAGE else "UINT8"
    if inp.datatype != expected:
        raise OipError(f"input {inp.name!r} has datatype {expected}, not {inp.datatype}")
    shape = tuple(inp.shape)
    if inp.name == IMAGE and len(shape) != 1:
        raise OipError(f"input {IMAGE!r} has shape [N] (one element per photo), not {list(shape)}")
    if inp.name == PIXELS and (len(shape) != 4 or shape[3] != 3):
        raise OipError(f"input {PIXELS!r} has shape [N, H, W, 3] (RGB), not {list(shape)}")
    if any(d < 1 for d in shape):
        raise OipError(f"input {inp.name!r}: every dimension must be at least 1, not {list(shape)}")
    count = shape[0]
    if count > max_images:
        raise OipError(f"input {inp.name!r} holds {count} images; at most {max_images} per request")
    if inp.name == PIXELS and max_pixels is not None and shape[1] * shape[2] > max_pixels:
        raise OipError(f"input {PIXELS!r}: {shape[1]}x{shape[2]} is over the {max_pixels}-pixel limit", 413)

    binary_size = (inp.parameters or {}).get("binary_data_size")
    rest = view[header_size:] if header_size is not None else view[len(view):]
    images: list[bytes] | None = None
    pixels: np.ndarray | None = None
    if binary_size is not None:
        if inp.data is not None:
            raise OipError(f"input {inp.name!r} has both data and parameters.binary_data_size")
        if header_size is None:
            raise OipError(f"input {inp.name!r} is binary (binary_data_size) but {HEADER_LENGTH} is missing")
        if isinstance(binary_size, bool) or not isinstance(binary_size, int) or binary_size < 0:
            raise OipError(f"input {inp.name!r}: binary_data_size must be a whole number of bytes")
        if binary_size != len(rest):
            raise OipError(f"input {inp.name!r}: binary_data_size is {binary_size} but {len(rest)} bytes follow "
                           "the JSON header")
        if inp.name == IMAGE:
            images = _split_bytes_elements(rest, count, IMAGE)
        else:
            if binary_size != math.prod(shape):
                raise OipError(f"input {PIXELS!r}: shape {list(shape)} is {math.prod(shape)} bytes of UINT8, "
                               f"binary_data_size is {binary_size}")
            pixels = np.frombuffer(rest, dtype=np.uint8).reshape(shape)
    else:
        if inp.data is None:
            raise OipError(f"input {inp.name!r} has no data (neither data nor parameters.binary_data_size)")
        if len(rest):
            raise OipError(f"{len(rest)} bytes follow the JSON header but no input is binary")
        if inp.name == IMAGE:
            images = _json_images(inp, count)
        else:
            pixels = _json_pixels(inp.data, shape)

    return InferRequest(id=request.id, images=images, pixels=pixels, threshold=threshold, outputs=outputs,
                        parameters=params)


# ---------------------------------------------------------------- answers


@dataclass(frozen=True)
class EncodedResponse:
    """An infer answer: `body` to send with `headers` (Content-Type, and the header length when binary)."""

    body: bytes
    header_length: int | None

    @property
    def media_type(self) -> str:
        return "application/json" if self.header_length is None else "application/octet-stream"

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": self.media_type}
        if self.header_length is not None:
            headers[HEADER_LENGTH] = str(self.header_length)
        return headers


def serialize_bytes_elements(items: Sequence[bytes]) -> bytes:
    """BYTES as binary tensor data: each element a 4-byte little-endian length, then its bytes."""
    parts = []
    for item in items:
        parts.append(len(item).to_bytes(4, "little"))
        parts.append(item)
    return b"".join(parts)


def _output(name: str, value: Any, count: int, request: InferRequest) -> tuple[str, list[int], Any]:
    """(datatype, shape, value) of one output, checked against the request (a mismatch is a server bug)."""
    if name == MASK:
        if request.images is not None:
            masks = list(value)
            if len(masks) != count or not all(isinstance(m, (bytes, bytearray, memoryview)) for m in masks):
                raise ValueError(f"mask for {count} photos must be {count} PNG byte strings")
            return "BYTES", [count], [bytes(m) for m in masks]
        arr = np.ascontiguousarray(value, dtype=np.uint8)
        if arr.shape != request.pixels.shape[:3]:
            raise ValueError(f"mask must have shape {list(request.pixels.shape[:3])}, not {list(arr.shape)}")
        return "UINT8", list(arr.shape), arr
    if name == PROBABILITY:
        arr = np.ascontiguousarray(value, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[0] != count:
            raise ValueError(f"probability must have shape [{count}, h, w], not {list(arr.shape)}")
        return "FP32", list(arr.shape), arr
    if name == NAIL_COUNT:
        arr = np.ascontiguousarray(value, dtype=np.int32)
        if arr.shape != (count,):
            raise ValueError(f"nail_count must have shape [{count}], not {list(arr.shape)}")
        return "INT32", [count], arr
    raise ValueError(f"unknown output {name!r}")


def encode_infer_response(request: InferRequest, *, model_name: str, model_version: str | None,
                          mask: Any, probability: np.ndarray | None = None,
                          nail_count: Sequence[int] | np.ndarray | None = None) -> EncodedResponse:
    """The answer to `request`: the outputs it asked for, in its order, each as JSON or binary as it asked.

    `mask` is a list of PNG byte strings for `image` requests, a uint8 [N, H, W] array of 0/1 for `pixels`;
    `probability` (float32 [N, h, w]) and `nail_count` ([N]) are needed only when `request.wants` them."""
    values = {MASK: mask, PROBABILITY: probability, NAIL_COUNT: nail_count}
    count = request.count
    outputs: list[dict[str, Any]] = []
    binaries: list[bytes | memoryview] = []
    for spec in request.outputs:
        value = values[spec.name]
        if value is None:
            raise ValueError(f"output {spec.name!r} was requested but not given")
        datatype, shape, data = _output(spec.name, value, count, request)
        entry: dict[str, Any] = {"name": spec.name, "datatype": datatype, "shape": shape}
        if spec.binary:
            # a numpy tensor goes in as a view: the one copy is the final join
            raw = serialize_bytes_elements(data) if datatype == "BYTES" else data.reshape(-1).data
            entry["parameters"] = {"binary_data_size": raw.nbytes if isinstance(raw, memoryview) else len(raw)}
            binaries.append(raw)
        elif datatype == "BYTES":
            entry["parameters"] = {"content_type": "base64"}
            entry["data"] = [pybase64.b64encode(m).decode("ascii") for m in data]
        else:
            entry["data"] = data.reshape(-1)
        outputs.append(entry)
    answer: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        answer["model_version"] = model_version
    if request.id is not None:
        answer["id"] = request.id
    answer["outputs"] = outputs
    head = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binaries:
        return EncodedResponse(head, None)
    return EncodedResponse(b"".join([head, *binaries]), len(head))


# ---------------------------------------------------------------- metadata, configuration, health


def server_metadata(name: str, version: str, extensions: Sequence[str] = EXTENSIONS) -> dict[str, Any]:
    """`GET /v2`."""
    return ServerMetadata(name=name, version=version, extensions=list(extensions)).model_dump()


def model_metadata(name: str, versions: Sequence[str], platform: str, *, model_size: tuple[int, int] | None = None,
                   max_batch_images: int | None = None) -> dict[str, Any]:
    """`GET /v2/models/{name}`: the inputs and outputs a generic client can discover (-1: variable size).

    A tensor has one datatype in the metadata, but `mask` has two: `BYTES` [N] (PNGs) when the input is
    `image`, `UINT8` [N, H, W] when it is `pixels`. It is listed as `BYTES` [-1], the photo path, and its
    `parameters` say what comes for `pixels` (`pixels_datatype`, `pixels_shape`). `probability` is at the
    model's size (`model_size`, (h, w)), -1 when not given. `parameters.max_batch_images` is N's limit."""
    h, w = model_size or (-1, -1)
    inputs = [
        MetadataTensor(name=IMAGE, datatype="BYTES", shape=[-1],
                       parameters={"content": "encoded photo: JPEG, PNG or BMP", "exclusive_with": PIXELS}),
        MetadataTensor(name=PIXELS, datatype="UINT8", shape=[-1, -1, -1, 3],
                       parameters={"content": "RGB pixels", "exclusive_with": IMAGE}),
    ]
    outputs = [
        MetadataTensor(name=MASK, datatype="BYTES", shape=[-1],
                       parameters={"content": "PNG mask, 0/255, at the photo's size and orientation",
                                   "pixels_datatype": "UINT8", "pixels_shape": "[-1, -1, -1] (0 or 1)"}),
        MetadataTensor(name=PROBABILITY, datatype="FP32", shape=[-1, h, w],
                       parameters={"content": "nail probability at the model's size", "optional": True}),
        MetadataTensor(name=NAIL_COUNT, datatype="INT32", shape=[-1],
                       parameters={"content": "nails found per image", "optional": True}),
    ]
    meta = ModelMetadata(name=name, versions=list(versions), platform=platform, inputs=inputs, outputs=outputs,
                         parameters=None if max_batch_images is None else {"max_batch_images": max_batch_images})
    return meta.model_dump(exclude_none=True)


_TRITON_TYPES = {"BYTES": "TYPE_STRING", "UINT8": "TYPE_UINT8", "FP32": "TYPE_FP32", "INT32": "TYPE_INT32"}


def model_config(name: str, platform: str, *, max_batch_images: int,
                 model_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """`GET /v2/models/{name}/config`: Triton's model configuration (the model_configuration extension), the
    part of it that describes this model. Triton's load generator perf_analyzer cannot start without this
    route. What it reads: `max_batch_size`, `input[].optional`, `input[]/output[].is_shape_tensor`, and
    whether `sequence_batching`, `dynamic_batching`, `model_transaction_policy`, `response_cache` or an
    `"ensemble"` platform are there (none are, here).

    `max_batch_size` is 0, Triton's way of saying that the batch is an explicit first dimension in `dims`
    (N of `image` [N] and `pixels` [N, H, W, 3]) rather than one Triton adds; with a value > 0 perf_analyzer
    would strip N from `image`'s shape and be left with none ("unable to set shape for the input").
    N's limit is in `parameters.max_batch_images`. Both inputs are `optional` (a request sends one of them):
    perf_analyzer then sends only the input its `--input-data` holds."""
    meta = model_metadata(name, [], platform, model_size=model_size)
    inputs = [{"name": t["name"], "data_type": _TRITON_TYPES[t["datatype"]], "dims": t["shape"], "optional": True}
              for t in meta["inputs"]]
    outputs = [{"name": t["name"], "data_type": _TRITON_TYPES[t["datatype"]], "dims": t["shape"]}
               for t in meta["outputs"]]
    return {"name": name, "platform": platform, "max_batch_size": 0, "input": inputs, "output": outputs,
            "parameters": {"max_batch_images": {"string_value": str(max_batch_images)}}}


def live_body(live: bool = True) -> dict[str, bool]:
    """`GET /v2/health/live` (200 when live). KServe's client reads `live`; tritonclient the status."""
    return {"live": live}


def ready_body(ready: bool) -> dict[str, bool]:
    """`GET /v2/health/ready`: 200 when ready, else a non-2xx status (the service's /readyz: 503)."""
    return {"ready": ready}


def model_ready_body(name: str, ready: bool) -> dict[str, Any]:
    """`GET /v2/models/{name}/ready`: 200 when ready, else a non-2xx status, the status being the answer."""
    return {"name": name, "ready": ready}
