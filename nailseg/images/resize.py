"""Resizing a photo to the model's input size, shared by serving, training and evaluation.

Images reach the model as uint8 RGB at the model's input size (4x smaller than float on the wire);
the runner normalises them on its device (``nailseg.inference.normalize``).
"""

from __future__ import annotations

import cv2
import numpy as np


def resize_to_model(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an HxWx3 uint8 image to ``size`` (h, w): area filter when shrinking."""
    h, w = size
    if rgb.shape[:2] == (h, w):
        return np.ascontiguousarray(rgb)
    shrinking = rgb.shape[0] * rgb.shape[1] > h * w
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
