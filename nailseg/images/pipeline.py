"""One image's way through the service, minus the model: prepare before, its answer's fields after.

The API service, the evaluation script and the benchmark all use these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

from nailseg.errors import ApiError, ErrorCode
from nailseg.images import geometry, maskformats, postprocess, tryon
from nailseg.images.codec import (
    decode_base64,
    decode_image,
    decode_opened,
    decode_reduced,
    encode_jpeg,
    encode_png,
    open_image,
)
from nailseg.images.resize import resize_to_model
from nailseg.model.spec import Preprocessing


class AnswerOptions(Protocol):
    """What ``segment_fields`` reads from a request (nailseg.api.schemas.SegmentOptions has these fields)."""

    return_confidence: bool
    return_contours: bool
    return_visualizations: bool
    return_nails: bool
    mask_format: str


@dataclass
class PreparedImage:
    size: tuple[int, int]  # (height, width) of the photo as displayed: the mask's size
    model_input: np.ndarray  # uint8 RGB at the model's size
    raw: bytes  # the encoded photo, decoded again (at the pictures' size) only for the overlay picture


def prepare_bytes(raw: bytes, prep: Preprocessing, max_pixels: int) -> PreparedImage:
    """Decode (large JPEGs at a reduced scale that still covers the model input) and resize."""
    return _prepare_opened(raw, open_image(raw, max_pixels), prep)


def _prepare_opened(raw: bytes, img: Image.Image, prep: Preprocessing) -> PreparedImage:
    rgb, size = decode_opened(img, max(prep.image_size), raw)
    return PreparedImage(size=size, model_input=resize_to_model(rgb, prep.image_size), raw=raw)


def prepare(image_data: str, prep: Preprocessing, max_pixels: int) -> PreparedImage:
    """base64 text -> decoded, validated, resized image (raises ApiError on bad input)."""
    return prepare_bytes(decode_base64(image_data), prep, max_pixels)


def prepare_pixels(rgb: np.ndarray, prep: Preprocessing) -> PreparedImage:
    """Decoded RGB (uint8 [H, W, 3]) resized to the model; it has no encoded photo."""
    return PreparedImage(size=rgb.shape[:2], model_input=resize_to_model(rgb, prep.image_size), raw=b"")


def prepare_many(images: list[str | bytes], prep: Preprocessing, max_pixels: int,
                 max_total_pixels: int | None = None) -> list[PreparedImage | ApiError]:
    """Each image (base64 text or raw bytes) prepared, or its own ApiError. With ``max_total_pixels``, the pixels the good images'
    headers declare are added up before any is decoded; over the budget, the whole request is refused."""
    opened: list[tuple[bytes, Image.Image] | ApiError] = []
    for data in images:
        try:
            raw = decode_base64(data) if isinstance(data, str) else data  # base64 text or an uploaded file
            if not raw:
                raise ApiError(ErrorCode.EMPTY_IMAGE, "the image is empty (zero bytes)")
            opened.append((raw, open_image(raw, max_pixels)))
        except ApiError as e:
            opened.append(e)
    total = sum(o[1].width * o[1].height for o in opened if not isinstance(o, ApiError))
    if max_total_pixels is not None and total > max_total_pixels:
        raise ApiError(ErrorCode.BATCH_PIXELS_TOO_LARGE, f"the images declare {total} pixels together; the limit "
                       f"is {max_total_pixels} a request (limits.max_batch_pixels): send fewer or smaller images")
    out: list[PreparedImage | ApiError] = []
    for o in opened:
        try:
            out.append(o if isinstance(o, ApiError) else _prepare_opened(*o, prep))
        except ApiError as e:
            out.append(e)
    return out


def mask_for(prepared: PreparedImage, prob: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(probability, mask) at the input image's own size."""
    full = postprocess.probability_at(prob, *prepared.size)
    return full, postprocess.mask_from(full, threshold)


def picture(prepared: PreparedImage) -> np.ndarray:
    """The photo (upright RGB) at the visualizations' bounded size."""
    h, w = postprocess.visualization_size(*prepared.size)
    rgb, _ = decode_reduced(prepared.raw, prepared.size[0] * prepared.size[1], at_least=max(h, w))
    return resize_to_model(rgb, (h, w))


def mask_picture(prepared: PreparedImage, prob: np.ndarray, threshold: float, overlay: bool) -> bytes:
    """PNG bytes of the mask, or with ``overlay`` of the photo (at the pictures' bounded size) with the mask
    tinted over it."""
    if overlay:
        rgb = picture(prepared)
        full = postprocess.probability_at(prob, *rgb.shape[:2])
        return encode_png(postprocess.overlay(rgb, postprocess.mask_from(full, threshold)))
    return encode_png(mask_for(prepared, prob, threshold)[1])


def tryon_picture(prepared: PreparedImage, prob: np.ndarray, threshold: float, polish: tryon.Polish,
                  output_format: str = "png") -> bytes:
    """The photo at its own size and orientation with the nails painted (nailseg/images/tryon.py), as PNG
    or JPEG bytes."""
    rgb = decode_image(prepared.raw, prepared.size[0] * prepared.size[1])
    full, mask = mask_for(prepared, prob, threshold)
    painted = tryon.paint(rgb, full, threshold, geometry.nails(mask), polish, max(prob.shape))
    return encode_jpeg(painted) if output_format == "jpeg" else encode_png(painted)


def segment_fields(prepared: PreparedImage, prob: np.ndarray, threshold: float, options: AnswerOptions) -> dict:
    """The segmentation fields of a response (mask, and what the options ask for)."""
    full, mask = mask_for(prepared, prob, threshold)
    return {
        **maskformats.mask_fields(mask, options.mask_format),
        "confidence_scores": postprocess.confidence(full, mask) if options.return_confidence else None,
        "contours": postprocess.contours(mask) if options.return_contours else None,
        "nails": geometry.geometry(mask, full) if options.return_nails else None,
        "visualizations": (postprocess.visualizations(picture(prepared), prob, threshold)
                           if options.return_visualizations else None),
    }
