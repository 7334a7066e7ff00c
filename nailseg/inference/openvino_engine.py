"""The CPU path's engine: OpenVINO on numpy buffers, numpy normalising and sigmoid (no torch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nailseg.inference.engine import InferenceEngine
from nailseg.inference.normalize_np import normalize_into_np
from nailseg.inference.openvino_session import NumpySession, OpenVinoBackend
from nailseg.inference.sigmoid import sigmoid


@dataclass
class _Slot:
    x: np.ndarray  # (B, 3, H, W) float32: the normalised batch
    session: NumpySession


class OpenVinoEngine(InferenceEngine):
    backend: OpenVinoBackend

    def __init__(self, backend: OpenVinoBackend, prep, **kw):
        super().__init__(backend, prep, "cpu", **kw)

    def _new_slot(self) -> _Slot:
        h, w = self.prep.image_size
        return _Slot(x=np.empty((self.batch_size, 3, h, w), np.float32), session=self.backend.session())

    def _run(self, slot: _Slot, chunk: np.ndarray) -> np.ndarray:
        x = normalize_into_np(slot.x[:len(chunk)], chunk, self.prep)
        prob = sigmoid(slot.session(x)[:, 0])  # a new array: the session's output is reused
        if self.test_time_flip:  # the mirrored photo too, its answer mirrored back, the two averaged
            prob = (prob + sigmoid(slot.session(np.ascontiguousarray(x[..., ::-1]))[:, 0])[..., ::-1]) / 2
        return prob
