"""From the model's probability map to what users get: mask, confidences, contours, pictures.

Serving and evaluation both call ``probability_at`` and ``mask_from`` so their masks cannot drift.
"""

from __future__ import annotations

import cv2
import numpy as np

from nailseg.images import geometry
from nailseg.images.codec import b64_png
from nailseg.images.results import (
    BoundingBox,
    ConfidenceScores,
    Contour,
    Visualizations,
)

OVERLAY_COLOUR = (255, 0, 160)  # magenta: stands out on skin and nail polish
OVERLAY_ALPHA = 0.5
VISUALIZATION_MAX_SIDE = 1024  # overlay and heatmap are drawn with their longer side at most this long


def visualization_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) of the pictures for an image of this size: its own, or scaled down to fit."""
    scale = min(1.0, VISUALIZATION_MAX_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def probability_at(prob: np.ndarray, height: int, width: int) -> np.ndarray:
    """Model-size probabilities (h, w) resized (bilinear) to the input image's own size."""
    if prob.shape == (height, width):
        return prob
    return cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)


def mask_from(prob: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 mask, 255 where the nail probability reaches the threshold."""
    mask = np.greater_equal(prob, np.float32(threshold)).view(np.uint8)  # as fast as cv2.compare, which
    mask *= 255  # refuses 1x1 arrays (it takes them for a scalar); ~20x faster than np.where
    return mask


def confidence(prob: np.ndarray, mask: np.ndarray) -> ConfidenceScores:
    n_in = cv2.countNonZero(mask)
    total = float(prob.sum())
    sum_in = cv2.mean(prob, mask=mask)[0] * n_in if n_in else 0.0  # no copy of the pixels inside
    n_out = prob.size - n_in
    return ConfidenceScores(
        overall_mean=total / prob.size,
        mask_mean=sum_in / n_in if n_in else 0.0,
        background_mean=(total - sum_in) / n_out if n_out else 0.0,
    )


def contours(mask: np.ndarray) -> list[Contour]:
    """Outer contours in the image's pixel coordinates, largest first."""
    result = []
    for c in geometry.outlines(mask):
        x, y, w, h = cv2.boundingRect(c)
        result.append(Contour(
            points=c[:, 0, :].tolist(),  # ~10x faster than converting point by point
            area=float(cv2.contourArea(c)),
            bounding_box=BoundingBox(x=x, y=y, width=w, height=h),
        ))
    return result


def overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    tinted = cv2.addWeighted(rgb, 1 - OVERLAY_ALPHA, np.full_like(rgb, OVERLAY_COLOUR), OVERLAY_ALPHA, 0)
    out = rgb.copy()
    np.copyto(out, tinted, where=mask[..., None] > 0)
    return out


def heatmap(prob: np.ndarray) -> np.ndarray:
    bgr = cv2.applyColorMap((np.clip(prob, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def visualizations(rgb: np.ndarray, prob: np.ndarray, threshold: float) -> Visualizations:
    """Overlay and heatmap at the size of ``rgb`` (``prob``: the model's probabilities, resized here)."""
    prob = probability_at(prob, *rgb.shape[:2])
    return Visualizations(overlay=b64_png(overlay(rgb, mask_from(prob, threshold))), heatmap=b64_png(heatmap(prob)))
