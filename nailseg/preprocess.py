"""Model-side preprocessing, shared by serving, training and evaluation.

Images reach the model as uint8 RGB at the model's input size (4x smaller than float
on the wire); the runner turns them into normalised float tensors on its device.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field


class Preprocessing(BaseModel):
    """How pixels become model input: resize, then ``(x / 255 - mean) / std``.

    ``normalize_images: true`` in a training checkpoint means /255 only: mean 0, std 1.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_size: tuple[int, int] = Field(description="(height, width) of the model input")
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def scale_only(self) -> bool:
        return self.mean == (0.0, 0.0, 0.0) and self.std == (1.0, 1.0, 1.0)


def resize_to_model(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an HxWx3 uint8 image to ``size`` (h, w): area filter when shrinking."""
    h, w = size
    if rgb.shape[:2] == (h, w):
        return np.ascontiguousarray(rgb)
    shrinking = rgb.shape[0] * rgb.shape[1] > h * w
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def normalize_into(out: torch.Tensor, batch_uint8: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """Write NHWC uint8 ``batch_uint8`` into NCHW float ``out`` (any device, any float dtype)."""
    x = batch_uint8.permute(0, 3, 1, 2)
    if prep.scale_only:
        return torch.mul(x, 1.0 / 255.0, out=out)
    scale = torch.tensor([1.0 / (255.0 * s) for s in prep.std], device=out.device, dtype=out.dtype)
    shift = torch.tensor([m / s for m, s in zip(prep.mean, prep.std)], device=out.device, dtype=out.dtype)
    out.copy_(x)
    return out.mul_(scale.view(1, 3, 1, 1)).sub_(shift.view(1, 3, 1, 1))


def to_tensor(batch_uint8: np.ndarray, prep: Preprocessing) -> torch.Tensor:
    """Convenience for training/evaluation: NHWC uint8 numpy -> NCHW float32 tensor."""
    src = torch.from_numpy(np.ascontiguousarray(batch_uint8))
    out = torch.empty((src.shape[0], 3, src.shape[1], src.shape[2]), dtype=torch.float32)
    return normalize_into(out, src, prep)
