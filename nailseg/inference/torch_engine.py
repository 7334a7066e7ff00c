"""The PyTorch path's engine (the GPU, and ``backend: torch``): torch buffers, on CUDA pinned host staging
buffers with non-blocking copies into device buffers, one CUDA stream a slot."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from nailseg.inference.backends import Session, TorchBackend
from nailseg.inference.engine import InferenceEngine
from nailseg.inference.normalize import normalize_into


@dataclass
class _Slot:
    host_in: torch.Tensor  # (B, H, W, 3) uint8, pinned on CUDA
    dev_in: torch.Tensor  # (B, 3, H, W) float32 on the device, channels_last
    host_out: torch.Tensor  # (B, H, W) float32, pinned on CUDA
    stream: torch.cuda.Stream | None
    session: Session


class TorchEngine(InferenceEngine):
    backend: TorchBackend

    def __init__(self, backend: TorchBackend, prep, device: torch.device | str, *, device_pools: bool = True, **kw):
        self.device_pools = device_pools
        super().__init__(backend, prep, torch.device(device), **kw)

    def _new_slot(self) -> _Slot:
        h, w = self.prep.image_size
        b, device = self.batch_size, self.device
        cuda = device.type == "cuda"
        return _Slot(
            host_in=torch.empty((b, h, w, 3), dtype=torch.uint8, pin_memory=cuda),
            dev_in=torch.empty((b, 3, h, w), dtype=torch.float32,
                               device=device if self.device_pools else "cpu").to(memory_format=torch.channels_last),
            host_out=torch.empty((b, h, w), dtype=torch.float32, pin_memory=cuda),
            stream=torch.cuda.Stream(device) if cuda else None,
            session=self.backend.session(),
        )

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
