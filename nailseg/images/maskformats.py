"""A uint8 mask (0/255) in the formats other tools read: PNG, COCO RLE, polygons.

COCO RLE follows pycocotools (``maskApi.c``: ``rleEncode`` and ``rleToString``): run lengths of the
mask read column by column (Fortran order), starting with a run of background, then written as
COCO's compressed string (5-bit groups with a continuation bit, offset by 48; from the third run on
each count is stored as the difference to the count two runs before).
"""

from __future__ import annotations

import numpy as np

from nailseg.images import geometry
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


def coco_rle_at(region: np.ndarray, x: int, y: int, height: int, width: int) -> CocoRle:
    """The COCO RLE of a (height, width) mask that is empty but for ``region`` (bool, its top-left corner
    at (x, y)): one nail's annotation, in time proportional to the columns it spans, not to the photo."""
    h, w = region.shape
    columns = np.zeros((w, height), bool)  # the spanned columns, each top to bottom (column-major)
    columns[:, y:y + h] = region.T
    runs = run_lengths(columns.T)
    runs[0] += x * height  # the empty columns to the left are background before the first run
    right = (width - x - w) * height  # the empty columns to the right: background after the last run
    if right and len(runs) % 2 == 0:  # it ends inside the nail: they make one more background run
        runs.append(0)
    runs[-1] += right
    return CocoRle(size=(height, width), counts=rle_string(runs))


def polygons(mask: np.ndarray) -> list[list[int]]:
    """Outer outlines as COCO polygons ([x1, y1, x2, y2, ...]), largest area first; specks under
    three points (which no polygon can describe) are left out."""
    return [c.reshape(-1).astype(int).tolist() for c in geometry.outlines(mask) if len(c) >= MIN_POLYGON_POINTS]


def mask_fields(mask: np.ndarray, fmt: MaskFormat) -> dict:
    """The response field(s) that carry the mask in the format asked for."""
    if fmt == "coco_rle":
        return {"mask_rle": coco_rle(mask)}
    if fmt == "polygons":
        return {"polygons": polygons(mask)}
    return {"mask_data": b64_png(mask)}
