"""One image's way through the service, minus the model: prepare before, finish after.

The API service, the evaluation script and the benchmark all use these two functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nailseg import postprocess
from nailseg.imaging import b64_png, decode_base64, decode_image
from nailseg.preprocess import Preprocessing, resize_to_model
from nailseg.schemas import SegmentOptions


@dataclass
class PreparedImage:
    rgb: np.ndarray  # the decoded photo at its own size (kept for the overlay picture)
    model_input: np.ndarray  # uint8 RGB at the model's size

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[0], self.rgb.shape[1]


def prepare_bytes(raw: bytes, prep: Preprocessing, max_pixels: int) -> PreparedImage:
    rgb = decode_image(raw, max_pixels)
    return PreparedImage(rgb=rgb, model_input=resize_to_model(rgb, prep.image_size))


def prepare(image_data: str, prep: Preprocessing, max_pixels: int) -> PreparedImage:
    """base64 text -> decoded, validated, resized image (raises ApiError on bad input)."""
    return prepare_bytes(decode_base64(image_data), prep, max_pixels)


def mask_for(prepared: PreparedImage, prob: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(probability, mask) at the input image's own size."""
    full = postprocess.probability_at(prob, *prepared.size)
    return full, postprocess.mask_from(full, threshold)


def finish(prepared: PreparedImage, prob: np.ndarray, threshold: float, options: SegmentOptions) -> dict:
    """The segmentation fields of a response (mask, and what the options ask for)."""
    full, mask = mask_for(prepared, prob, threshold)
    return {
        "mask_data": b64_png(mask),
        "confidence_scores": postprocess.confidence(full, mask) if options.return_confidence else None,
        "contours": postprocess.contours(mask) if options.return_contours else None,
        "visualizations": postprocess.visualizations(prepared.rgb, full, mask) if options.return_visualizations else None,
    }
