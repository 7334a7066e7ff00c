"""A uint8 mask (0/255) in the formats other tools read: PNG, COCO RLE, polygons.

COCO RLE follows pycocotools (``maskApi.c``: ``rleEncode`` and ``rleToString``): run lengths of the
mask read column by column (Fortran order), starting with a run of background, then written as
COCO's compressed string (5-bit groups with a continuation bit, offset by 48; from the third run on
each count is stored as the difference to the count two runs before).
"""

from __future__ import annotations

import cv2
import numpy as np

from nailseg.images.codec import b64_png
from nailseg.images.results import CocoRle, MaskFormat

MIN_POLYGON_POINTS = 3


def run_lengths(mask: np.ndarray) -> list[int]:
    """Column-major runs, alternating background/nail, starting with background (possibly 0)."""
    flat = (mask.T > 0).ravel()
    if flat.size == 0:
        return [0]
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def rle_string(counts: list[int]) -> str:
    out = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift: negative differences end at -1
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def coco_rle(mask: np.ndarray) -> CocoRle:
    h, w = mask.shape
    return CocoRle(size=(h, w), counts=rle_string(run_lengths(mask)))


def polygons(mask: np.ndarray) -> list[list[int]]:
    """Outer outlines as COCO polygons ([x1, y1, x2, y2, ...]), largest area first; specks under
    three points (which no polygon can describe) are left out."""
    found, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    found = sorted((c for c in found if len(c) >= MIN_POLYGON_POINTS), key=cv2.contourArea, reverse=True)
    return [c.reshape(-1).astype(int).tolist() for c in found]


def mask_fields(mask: np.ndarray, fmt: MaskFormat) -> dict:
    """The response field(s) that carry the mask in the format asked for."""
    if fmt == "coco_rle":
        return {"mask_rle": coco_rle(mask)}
    if fmt == "polygons":
        return {"polygons": polygons(mask)}
    return {"mask_data": b64_png(mask)}
