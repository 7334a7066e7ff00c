"""Does a fast path agree with fp32? The int8 gate's measure, shared by the import (``store.quantize``) and the
runner's start-up trial (``inference.trial``), so both judge with the same figures on the same views.

The views are each gate photo (uint8, at the model's size) and its three flips; the masks compared are the
probabilities at ``threshold``, at the model's resolution, pooled over all views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def gate_views(photos: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) photos -> (4N, H, W, 3): each photo, then its left-right, up-down and both flips."""
    views = []
    for rgb in photos:
        views.extend((rgb, rgb[:, ::-1], rgb[::-1], rgb[::-1, ::-1]))
    return np.ascontiguousarray(np.stack(views)) if views else np.empty((0, *photos.shape[1:]), np.uint8)


@dataclass(frozen=True)
class Agreement:
    mask_iou: float  # pooled IoU of the two masks
    mean_abs_prob_diff: float  # mean |p_fast - p_fp32| over all pixels
    inputs: int

    def passes(self, min_iou: float, max_diff: float) -> bool:
        return self.mask_iou >= min_iou and self.mean_abs_prob_diff <= max_diff

    def summary(self, min_iou: float, max_diff: float) -> str:
        """e.g. ``IoU 0.981 >= 0.97, mean |dp| 0.0016 <= 0.01`` (the int8 gate's own wording)."""
        iou_ok, diff_ok = self.mask_iou >= min_iou, self.mean_abs_prob_diff <= max_diff
        return (f"IoU {self.mask_iou:.3f} {'>=' if iou_ok else '<'} {min_iou}, mean |dp| "
                f"{self.mean_abs_prob_diff:.4f} {'<=' if diff_ok else '>'} {max_diff}")


def agreement(fp32: np.ndarray, other: np.ndarray, threshold: float) -> Agreement:
    """Pooled mask IoU at ``threshold`` and mean absolute difference of two probability arrays (same shape)."""
    a, b = fp32 > threshold, other > threshold
    union = int((a | b).sum())
    iou = float((a & b).sum() / union) if union else 1.0  # both empty everywhere: they agree
    diff = float(np.abs(fp32.astype(np.float64) - other).mean())
    return Agreement(mask_iou=round(iou, 5), mean_abs_prob_diff=round(diff, 6), inputs=len(fp32))
