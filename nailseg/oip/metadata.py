"""The other routes' bodies: server and model metadata, Triton's model configuration, health."""

from __future__ import annotations

from typing import Any, Sequence

from nailseg.oip.types import (
    EXTENSIONS,
    IMAGE,
    MASK,
    NAIL_COUNT,
    PIXELS,
    PROBABILITY,
    MetadataTensor,
    ModelMetadata,
    ServerMetadata,
)

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
