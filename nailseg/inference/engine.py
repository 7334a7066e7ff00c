"""The inference engine: a model on a device plus reusable, preallocated buffers (no torch here).

Input is a batch of uint8 RGB images at the model's size (N, H, W, 3); output is the
probability map (N, H, W) float32 (with ``test_time_flip``, the mean of the photo's and its mirror
image's maps: twice the model time, test Dice 0.883 -> 0.892 with the bundled model). Buffers are
allocated once for the largest batch and reused. Several buffer sets ("slots") let that many batches
run at once; each call takes one.

This is what every engine shares (slots, batching, warm-up, health check, utilisation); a subclass
owns its buffers and runs one batch: ``openvino_engine.OpenVinoEngine`` (numpy buffers, no torch: the CPU
path) and ``torch_engine.TorchEngine`` (torch buffers, pinned with CUDA streams on a GPU). ``start.py``
builds the one the settings ask for.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from typing import Any

import numpy as np

from nailseg.images.resize import resize_to_model
from nailseg.model.spec import Preprocessing

log = logging.getLogger(__name__)


class InferenceEngine:
    def __init__(self, backend: Any, prep: Preprocessing, device: Any, *, batch_size: int, slots: int = 1,
                 max_pool_bytes: float = 4 * 2**30, test_time_flip: bool = False,
                 precision_reason: str | None = None):
        self.backend = backend
        self.test_time_flip = test_time_flip
        self.device = device
        self.prep = prep
        self.batch_size = batch_size
        self.precision = backend.precision
        self.precision_reason = precision_reason or f"{backend.precision}: chosen by the caller"
        h, w = prep.image_size
        per_slot = batch_size * h * w * (3 + 3 * 4 + 4)
        fit = int(max_pool_bytes // per_slot)
        if fit < 1:
            raise ValueError(f"one batch of {batch_size} images at {h}x{w} needs {per_slot / 2**30:.3f} GB, "
                             f"more than memory.max_pool_size_gb allows")
        if fit < slots:
            log.warning("memory.max_pool_size_gb fits %d of %d buffer sets; using %d", fit, slots, fit)
        self.slot_count = min(slots, fit)
        self.pool_bytes = self.slot_count * per_slot
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(self.slot_count):
            self._free.put(self._new_slot())
        self._lock = threading.Lock()
        self._in_flight = 0
        self.peak_in_flight = 0
        self.batches = 0
        self.images = 0
        self.last_check: float | None = None
        self.last_check_ok: bool | None = None

    def _new_slot(self) -> Any:
        """One buffer set for ``batch_size`` images, with its own backend session."""
        raise NotImplementedError

    def _run(self, slot: Any, chunk: np.ndarray) -> np.ndarray:
        """One batch (at most ``batch_size``) of uint8 images -> its (n, H, W) float32 probabilities."""
        raise NotImplementedError

    @property
    def mode(self) -> str:
        """Precision and views, for logs and reports: e.g. ``bf16`` or ``int8 + test-time flip``."""
        return self.precision + (" + test-time flip" if self.test_time_flip else "")

    @property
    def capacity(self) -> int:
        return self.slot_count * self.batch_size

    def infer(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 at model size -> (N, H, W) float32 probabilities."""
        h, w = self.prep.image_size
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"expected uint8 (N, {h}, {w}, 3), got {images.dtype} {images.shape}")
        if images.shape[1:3] != (h, w):  # a caller still sized for the model served before a reload
            log.warning("resizing %s inputs to the model's %dx%d", images.shape[1:3], h, w)
            images = np.stack([resize_to_model(image, (h, w)) for image in images])
        out = np.empty(images.shape[:3], np.float32)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            with self._slot(len(chunk)) as slot:
                out[start:start + len(chunk)] = self._run(slot, chunk)
        return out

    @contextlib.contextmanager
    def _slot(self, n: int):
        slot = self._free.get()
        with self._lock:
            self._in_flight += n
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            yield slot
        finally:
            with self._lock:
                self._in_flight -= n
                self.batches += 1
                self.images += n
            self._free.put(slot)

    def warm_up(self) -> None:
        """Run every batch size once so the first real request pays no first-call costs."""
        h, w = self.prep.image_size
        for n in sorted({1, self.batch_size}):
            self.infer(np.zeros((n, h, w, 3), np.uint8))
        self.batches = self.images = self.peak_in_flight = 0

    def check(self, dummy_inference: bool) -> bool:
        """Health check: optionally one forward pass on a blank image; records time and result."""
        ok = True
        if dummy_inference:
            try:
                h, w = self.prep.image_size
                prob = self.infer(np.full((1, h, w, 3), 127, np.uint8))
                ok = bool(np.isfinite(prob).all() and prob.min() >= 0 and prob.max() <= 1)
            except Exception:  # a health check reports, it does not raise
                log.exception("health check inference failed")
                ok = False
        self.last_check, self.last_check_ok = time.time(), ok
        return ok

    def utilisation(self) -> dict[str, float | int]:
        with self._lock:
            in_flight = self._in_flight
        return {
            "input_pool_utilization": in_flight / self.capacity,
            "output_pool_utilization": in_flight / self.capacity,
            "peak_pool_utilization": self.peak_in_flight / self.capacity,
            "mean_batch_fill": self.images / max(self.batches, 1) / self.batch_size,
            "pool_capacity_images": self.capacity,
            "pool_slots": self.slot_count,
            "pool_bytes": self.pool_bytes,
            "batches_run": self.batches,
            "images_run": self.images,
        }
