"""The inference engine: a model on a device plus reusable, preallocated buffers.

Input is a batch of uint8 RGB images at the model's size (N, H, W, 3); output is the
probability map (N, H, W) float32 (with ``test_time_flip``, the mean of the photo's and its mirror
image's maps: twice the model time, test Dice 0.883 -> 0.892 with the bundled model). Buffers are
allocated once for the largest batch and reused: on CUDA, pinned host staging buffers with
non-blocking copies into device buffers. Several buffer sets ("slots") let that many batches run
at once; each call takes one.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nailseg.config import Settings
from nailseg.images.resize import resize_to_model
from nailseg.inference.backends import (
    OpenVinoBackend,
    Session,
    TorchBackend,
    resolve_backend,
)
from nailseg.inference import trial
from nailseg.inference.hardware import resolve_device
from nailseg.inference.normalize import normalize_into
from nailseg.inference.precision import resolve_precision
from nailseg.model.spec import Int8Gate, Preprocessing
from nailseg.model.unet import AttentionUNet

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    host_in: torch.Tensor  # (B, H, W, 3) uint8, pinned on CUDA
    dev_in: torch.Tensor  # (B, 3, H, W) float32 on the device (channels_last for PyTorch)
    host_out: torch.Tensor  # (B, H, W) float32, pinned on CUDA
    stream: torch.cuda.Stream | None
    session: Session


class InferenceEngine:
    def __init__(self, backend: TorchBackend | OpenVinoBackend, prep: Preprocessing, device: torch.device, *,
                 batch_size: int, slots: int = 1, max_pool_bytes: float = 4 * 2**30, device_pools: bool = True,
                 test_time_flip: bool = False, precision_reason: str | None = None):
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
        self._free: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
        cuda = device.type == "cuda"
        layout = torch.channels_last if backend.channels_last else torch.contiguous_format
        for _ in range(self.slot_count):
            self._free.put(_Slot(
                host_in=torch.empty((batch_size, h, w, 3), dtype=torch.uint8, pin_memory=cuda),
                dev_in=torch.empty((batch_size, 3, h, w), dtype=torch.float32,
                                   device=device if device_pools else "cpu").to(memory_format=layout),
                host_out=torch.empty((batch_size, h, w), dtype=torch.float32, pin_memory=cuda),
                stream=torch.cuda.Stream(device) if cuda else None,
                session=backend.session(),
            ))
        self._lock = threading.Lock()
        self._in_flight = 0
        self.peak_in_flight = 0
        self.batches = 0
        self.images = 0
        self.last_check: float | None = None
        self.last_check_ok: bool | None = None

    @classmethod
    def from_settings(cls, model: AttentionUNet, prep: Preprocessing, settings: Settings,
                      openvino_dir: Path | None = None, int8_gate: Int8Gate | None = None, *,
                      identity: tuple[str, str] | None = None) -> InferenceEngine:
        """An engine on the configured device, backend and precision, with the configured buffers.

        ``openvino_dir`` holds the IRs exported at import time (else the fp32 one is exported now);
        ``int8_gate`` is the import's int8 gate result, which ``precision: auto`` needs to consider int8
        (the start-up trial then decides on this CPU: trial.py). ``identity``, the model's (sha256, store
        tag), lets the trial cache its verdict.
        """
        s = settings
        device = resolve_device(s.model.device, s.model.fallback_to_cpu)
        backend = None  # or the one the start-up trial compiled
        if (s.inference.precision == "auto" and device.type == "cpu"
                and resolve_backend(s.inference.backend, device) == "openvino"):
            choice, backend = trial.auto_cpu(model, prep, openvino_dir, int8_gate, backend=s.inference.backend,
                                             batch_size=s.inference.batch_size,
                                             cache_dir=s.inference.precision_cache_dir, identity=identity)
        else:
            choice = resolve_precision(s.inference.precision, device, backend=s.inference.backend, int8_gate=int8_gate)
        if backend is None:
            if resolve_backend(s.inference.backend, device, choice.precision) == "openvino":
                backend = OpenVinoBackend(model, prep.image_size, choice.precision, openvino_dir)
            else:
                backend = TorchBackend(model, device, choice.precision)
        return cls(backend, prep, device, batch_size=s.inference.batch_size, slots=s.memory.pool_size_multiplier,
                   max_pool_bytes=s.memory.max_pool_size_gb * 2**30, device_pools=s.memory.enable_gpu_pools,
                   test_time_flip=s.inference.test_time_flip, precision_reason=choice.reason)

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

    @torch.inference_mode()
    def _run(self, slot: _Slot, chunk: np.ndarray) -> np.ndarray:
        n = len(chunk)
        slot.host_in[:n].numpy()[...] = chunk  # host buffers are CPU tensors (pinned on CUDA)
        stream_ctx = torch.cuda.stream(slot.stream) if slot.stream is not None else contextlib.nullcontext()
        with stream_ctx:
            dev_u8 = slot.host_in[:n].to(slot.dev_in.device, non_blocking=True)
            x = normalize_into(slot.dev_in[:n], dev_u8, self.prep)
            if x.device != self.device:
                x = x.to(self.device, non_blocking=True)
            prob = torch.sigmoid(slot.session(x)[:, 0])  # a new tensor: the session's output is reused
            if self.test_time_flip:  # the mirrored photo too, its answer mirrored back, the two averaged
                prob = (prob + torch.sigmoid(slot.session(x.flip(3))[:, 0]).flip(2)) / 2
            slot.host_out[:n].copy_(prob, non_blocking=True)
        if slot.stream is not None:
            slot.stream.synchronize()
        return slot.host_out[:n].numpy()

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
