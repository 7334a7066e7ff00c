"""Writing an infer answer: the outputs a request asked for, each as JSON or binary tensor data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import orjson
import pybase64

from nailseg.oip.types import HEADER_LENGTH, MASK, NAIL_COUNT, PROBABILITY, InferRequest

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
