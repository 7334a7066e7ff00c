"""Reading an infer request's body: its content encoding, the binary tensor data extension's header
length, then the JSON and binary tensors into an ``InferRequest`` (``OipError`` for anything malformed)."""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import orjson
import pybase64
from pydantic import ValidationError

from nailseg.oip.types import (
    HEADER_LENGTH,
    IMAGE,
    INPUT_NAMES,
    MASK,
    OUTPUT_NAMES,
    PIXELS,
    InferenceRequest,
    InferRequest,
    OipError,
    RequestedOutput,
    RequestInput,
)

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
