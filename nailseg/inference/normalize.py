"""uint8 NHWC batches into normalised float NCHW tensors, on any device (the runner, training, evaluation)."""

from __future__ import annotations

import numpy as np
import torch

from nailseg.model.spec import Preprocessing


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
