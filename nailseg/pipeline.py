"""One image's way through the service, minus the model: prepare before, finish after.

The API service, the evaluation script and the benchmark all use these two functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from nailseg import maskformats, postprocess
from nailseg.imaging import decode_base64, encode_png, decode_image, decode_reduced
from nailseg.preprocess import Preprocessing, resize_to_model


class FinishOptions(Protocol):
    """What ``finish`` reads from a request (nailseg.schemas.SegmentOptions has these fields)."""

    return_confidence: bool
    return_contours: bool
    return_visualizations: bool
    mask_format: str


@dataclass
class PreparedImage:
    size: tuple[int, int]  # (height, width) of the photo as displayed: the mask's size
    model_input: np.ndarray  # uint8 RGB at the model's size
    raw: bytes  # the encoded photo, decoded in full only for the overlay picture


def prepare_bytes(raw: bytes, prep: Preprocessing, max_pixels: int) -> PreparedImage:
    """Decode (large JPEGs at a reduced scale that still covers the model input) and resize."""
    rgb, size = decode_reduced(raw, max_pixels, at_least=max(prep.image_size))
    return PreparedImage(size=size, model_input=resize_to_model(rgb, prep.image_size), raw=raw)


def prepare(image_data: str, prep: Preprocessing, max_pixels: int) -> PreparedImage:
    """base64 text -> decoded, validated, resized image (raises ApiError on bad input)."""
    return prepare_bytes(decode_base64(image_data), prep, max_pixels)


def mask_for(prepared: PreparedImage, prob: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(probability, mask) at the input image's own size."""
    full = postprocess.probability_at(prob, *prepared.size)
    return full, postprocess.mask_from(full, threshold)


def mask_picture(prepared: PreparedImage, prob: np.ndarray, threshold: float, overlay: bool) -> bytes:
    """PNG bytes of the mask, or with ``overlay`` of the photo with the mask tinted over it."""
    _, mask = mask_for(prepared, prob, threshold)
    if overlay:
        return encode_png(postprocess.overlay(decode_image(prepared.raw, mask.size), mask))
    return encode_png(mask)


def finish(prepared: PreparedImage, prob: np.ndarray, threshold: float, options: FinishOptions) -> dict:
    """The segmentation fields of a response (mask, and what the options ask for)."""
    full, mask = mask_for(prepared, prob, threshold)
    return {
        **maskformats.mask_fields(mask, options.mask_format),
        "confidence_scores": postprocess.confidence(full, mask) if options.return_confidence else None,
        "contours": postprocess.contours(mask) if options.return_contours else None,
        "visualizations": (postprocess.visualizations(decode_image(prepared.raw, mask.size), full, mask)
                           if options.return_visualizations else None),
    }
