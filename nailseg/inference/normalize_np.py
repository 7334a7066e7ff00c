"""uint8 NHWC batches into normalised float32 NCHW arrays with numpy: the OpenVINO path's ``normalize_into``.

The same float32 operations in the same order as ``normalize.normalize_into`` (scale, or copy, scale and
shift), so both give the same bits (``tests/test_numpy_inference.py``)."""

from __future__ import annotations

import numpy as np

from nailseg.model.spec import Preprocessing


def normalize_into_np(out: np.ndarray, batch_uint8: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Write (N, H, W, 3) uint8 ``batch_uint8`` into (N, 3, H, W) float32 ``out``; returns ``out``."""
    x = batch_uint8.transpose(0, 3, 1, 2)
    if prep.scale_only:
        return np.multiply(x, np.float32(1.0 / 255.0), out=out, dtype=np.float32)
    scale = np.array([1.0 / (255.0 * s) for s in prep.std], np.float32).reshape(1, 3, 1, 1)
    shift = np.array([m / s for m, s in zip(prep.mean, prep.std)], np.float32).reshape(1, 3, 1, 1)
    out[...] = x
    out *= scale
    out -= shift
    return out


def to_array(batch_uint8: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """NHWC uint8 -> a new NCHW float32 array (the trial's and the int8 gate's inputs)."""
    n, h, w, _ = batch_uint8.shape
    return normalize_into_np(np.empty((n, 3, h, w), np.float32), batch_uint8, prep)
