"""Nail-polish try-on: the photo with each nail painted in a colour, the way polish looks, not paint.

Per nail (nailseg/images/geometry.py), inside its own box only:
- recoloured in CIE Lab: the polish's a and b, and the polish's lightness plus the nail's own lightness
  variation around its mean, so its shading and highlights stay (a flat fill is not a try-on);
- ``gloss`` keeps more of that variation and adds a highlight stripe along the nail's long axis; ``matte``
  flattens the variation and leaves out the highlights;
- blended with a soft edge from the probability map (half way at the threshold), so the cuticle and the
  free edge have no jaggies, and never beyond a few pixels of the nail's mask.
Every other pixel is the decoded photo's, unchanged: a photo with no nails comes back as it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from nailseg.images.geometry import Nail

Finish = Literal["gloss", "matte"]
EDGE = 0.25  # the soft edge: opacity rises from 0 to 1 between threshold - EDGE and threshold + EDGE
SHADING = {"gloss": 0.8, "matte": 0.35}  # how much of the nail's own lightness variation stays
HIGHLIGHT = 0.55  # the gloss stripe's strength at its centre: this share of the way to white
STRIPE_OFFSET, STRIPE_WIDTH, STRIPE_LENGTH = 0.22, 0.09, 0.38  # of the nail's width / width / length


@dataclass(frozen=True)
class Polish:
    colour: tuple[int, int, int]  # RGB
    opacity: float  # the defaults are the request model's (nailseg/api/schemas.py's TryOnRequest)
    finish: Finish

    @classmethod
    def parse(cls, hex_colour: str, opacity: float, finish: Finish) -> Polish:
        """From ``#RRGGBB`` (the request models check the form)."""
        text = hex_colour.lstrip("#")
        return cls((int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)), opacity, finish)

    @property
    def lab(self) -> np.ndarray:
        return _lab(np.asarray(self.colour, np.uint8).reshape(1, 1, 3))[0, 0]


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)  # L 0..100, a and b about -128..127


def edge_reach(height: int, width: int, model_side: int = 256) -> int:
    """Pixels beyond the mask the soft edge may reach: about the width of one model pixel at this size."""
    return max(2, math.ceil(1.5 * max(height, width) / model_side))


def paint(rgb: np.ndarray, prob: np.ndarray, threshold: float, nails: list[Nail], polish: Polish,
          model_side: int = 256) -> np.ndarray:
    """The photo (upright RGB, the size of ``prob``) with every nail painted; ``rgb`` is left as it was."""
    out = rgb.copy()
    height, width = prob.shape
    reach = edge_reach(height, width, model_side)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    target = polish.lab
    for nail in nails:
        x, y, w, h = nail.box
        x0, y0, x1, y1 = max(0, x - reach), max(0, y - reach), min(width, x + w + reach), min(height, y + h + reach)
        near = np.zeros((y1 - y0, x1 - x0), np.uint8)
        near[y - y0:y - y0 + h, x - x0:x - x0 + w] = nail.region
        near = cv2.dilate(near, kernel) > 0
        p = prob[y0:y1, x0:x1]
        alpha = np.clip((p - (threshold - EDGE)) / (2 * EDGE), 0, 1) * polish.opacity
        alpha[~near] = 0
        lab = _lab(out[y0:y1, x0:x1])
        inside = lab[y - y0:y - y0 + h, x - x0:x - x0 + w][nail.region]
        painted = _recoloured(lab, inside[:, 0], target, polish.finish, nail, (x0, y0))
        roi = out[y0:y1, x0:x1].astype(np.float32)
        blended = roi + alpha[..., None] * (painted - roi)
        np.copyto(out[y0:y1, x0:x1], np.rint(blended).astype(np.uint8), where=(alpha > 0)[..., None])
    return out


def _recoloured(lab: np.ndarray, nail_lightness: np.ndarray, target: np.ndarray, finish: Finish, nail: Nail,
                origin: tuple[int, int]) -> np.ndarray:
    """The box's pixels in the polish's colour with the nail's shading (float RGB 0..255)."""
    lightness = lab[..., 0]
    mean, spread = float(nail_lightness.mean()), float(nail_lightness.std())
    shade = lightness - mean
    if finish == "matte":
        shade = np.clip(shade, -12, 4)  # highlights flattened, shadows softened
    new = np.empty_like(lab)
    new[..., 0] = target[0] + shade * SHADING[finish]
    new[..., 1], new[..., 2] = target[1], target[2]
    if finish == "gloss":
        shine = _stripe(lab.shape[:2], nail, origin)
        shine = np.maximum(shine, np.clip((shade - spread) / (2 * spread + 1e-6), 0, 1))  # its own highlights
        new[..., 0] += (100 - new[..., 0]) * HIGHLIGHT * shine
        new[..., 1:] *= (1 - 0.7 * shine)[..., None]  # a highlight is the light's colour, not the polish's
    np.clip(new[..., 0], 0, 100, out=new[..., 0])
    return cv2.cvtColor(new, cv2.COLOR_Lab2RGB) * 255


def _stripe(shape: tuple[int, int], nail: Nail, origin: tuple[int, int]) -> np.ndarray:
    """A soft highlight band along the nail's long axis, off its centre line (0..1)."""
    (cx, cy), axis = nail.axis()
    theta = math.radians(axis.angle)
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    dx, dy = xs + origin[0] - cx, ys + origin[1] - cy
    along = dx * math.cos(theta) + dy * math.sin(theta)
    across = -dx * math.sin(theta) + dy * math.cos(theta)
    width, length = max(axis.width, 1.0), max(axis.length, 1.0)
    band = np.exp(-(((across + STRIPE_OFFSET * width) / (STRIPE_WIDTH * width)) ** 2))
    return band * np.exp(-((along / (STRIPE_LENGTH * length)) ** 4))
