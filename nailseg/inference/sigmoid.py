"""The logistic function on float32 numpy arrays, bit for bit as ``torch.sigmoid`` computes it on a CPU.

The OpenVINO path has no torch, and its answers must stay byte-identical to those served when the
probabilities came from ``torch.sigmoid``: ``1 / (exp(-x) + 1)`` with SLEEF's ``expf_u10`` (the
exponential ATen's vectorised CPU kernels use), whose fused multiply-adds are reproduced here exactly
(the product in float64 is exact; a sum that lands on a float32 halfway point is nudged the way the
exact sum lies, so that rounding to float32 rounds once). ``tests/test_numpy_inference.py`` checks it
against torch on millions of values and on the model's real logits.
"""

from __future__ import annotations

import numpy as np

_F32, _F64 = np.float32, np.float64
_R_LN2 = _F32(1.442695040888963407359924681001892137426645954152985934135449406931)
_L2U, _L2L = _F32(0.693145751953125), _F32(1.428606765330187045e-06)
_POLY = tuple(_F32(c) for c in (0.000198527617612853646278381, 0.00139304355252534151077271,
                                0.00833336077630519866943359, 0.0416664853692054748535156,
                                0.166666671633720397949219, 0.5))
_LOW = (1 << 29) - 1  # the float64 mantissa bits that float32 drops
_HALF = 1 << 28  # ... holding exactly half a float32 ulp
CHUNK = 1 << 15  # elements at a time: the float64 temporaries stay in the CPU's cache (1.6x faster than whole maps)


def _fma(a: np.ndarray, b, c) -> np.ndarray:
    """float32 ``a * b + c`` with one rounding, as a fused multiply-add gives it."""
    p = np.multiply(a, b, dtype=_F64)  # exact: 24 + 24 bits fit float64's 53
    s = np.add(p, c, dtype=_F64)
    tie = (s.view(np.int64) & _LOW) == _HALF
    if tie.any():  # a float32 halfway point: which way the exact sum lies decides (round to odd)
        bb = s - p
        err = (p - (s - bb)) + (c - bb)
        fix = tie & (err != 0)
        s[fix] = np.nextafter(s[fix], np.where(err[fix] > 0, np.inf, -np.inf))
    return s.astype(_F32)


def _pow2(q: np.ndarray) -> np.ndarray:
    return ((q + 0x7F) << 23).astype(np.int32).view(_F32)


def _expf(d: np.ndarray) -> np.ndarray:
    """SLEEF's ``expf_u10`` (FMA build), for finite float32 ``d``."""
    q = np.rint(d * _R_LN2).astype(np.int32)
    qf = q.astype(_F32)
    s = _fma(qf, -_L2U, d)
    s = _fma(qf, -_L2L, s)
    u = np.full_like(d, _POLY[0])
    for c in _POLY[1:]:
        u = _fma(u, s, c)
    u = _F32(1) + _fma(s * s, u, s)
    half = q >> 1
    u = u * _pow2(half) * _pow2(q - half)
    u[d < -104] = 0
    u[d > 100] = np.inf
    return u


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``torch.sigmoid(x)`` for a float32 array: a new float32 array of the same shape."""
    x = np.asarray(x, _F32)
    flat, out = x.reshape(-1), np.empty(x.size, _F32)
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(0, len(flat), CHUNK):
            e = _expf(_F32(0) - flat[i:i + CHUNK])
            np.divide(_F32(1), e + _F32(1), out=out[i:i + CHUNK])
    nan = np.isnan(flat)
    if nan.any():
        out[nan] = np.nan
    return out.reshape(x.shape)
