"""Each nail of a mask as a shape: its outline, region, area, box, centroid, principal axis, mean probability.

One implementation for everything that needs nails: the outlines behind ``contours`` and ``polygons``,
the per-nail geometry of ``return_nails``, the try-on renderer and the COCO export. A nail is an outer
outline of the mask (8-connected, as ``cv2.findContours`` traces it) with the mask's pixels inside it.

The principal axis comes from the region's second central moments: the covariance matrix's
eigenvectors give the long axis's direction, and ``4 * sqrt(eigenvalue)`` the length and width of the
ellipse with the same moments (a uniform ellipse's full axis). Angles are in degrees, in image
coordinates (x to the right, y down), from the +x axis toward +y (clockwise on screen), in (-90, 90].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from nailseg.images.results import BoundingBox, NailGeometry, PrincipalAxis


def outlines(mask: np.ndarray) -> list[np.ndarray]:
    """Outer outlines of a 0/255 mask, each (N, 1, 2) int32 in pixel coordinates, largest area first."""
    found, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return sorted(found, key=cv2.contourArea, reverse=True)


@dataclass
class Nail:
    """One nail: its outline, and its region (bool) inside its bounding box ``box`` = (x, y, w, h)."""

    outline: np.ndarray
    box: tuple[int, int, int, int]
    region: np.ndarray

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.region))

    @property
    def window(self) -> tuple[slice, slice]:
        """The (rows, columns) of the image the nail's box covers."""
        x, y, w, h = self.box
        return slice(y, y + h), slice(x, x + w)

    def axis(self) -> tuple[tuple[float, float], PrincipalAxis]:
        """((centroid x, centroid y) in the image, principal axis) from the region's moments."""
        m = cv2.moments(self.region.view(np.uint8), binaryImage=True)
        x, y, _, _ = self.box
        if m["m00"] == 0:  # no pixel of the mask inside the outline (cannot happen for a traced outline)
            return (float(x), float(y)), PrincipalAxis(angle=0.0, length=0.0, width=0.0)
        mu20, mu02, mu11 = (m[k] / m["m00"] for k in ("mu20", "mu02", "mu11"))
        spread = math.hypot((mu20 - mu02) / 2, mu11)
        major, minor = (mu20 + mu02) / 2 + spread, max((mu20 + mu02) / 2 - spread, 0.0)
        angle = math.degrees(0.5 * math.atan2(2 * mu11, mu20 - mu02))
        if angle <= -90:
            angle += 180
        centroid = (x + m["m10"] / m["m00"], y + m["m01"] / m["m00"])
        return centroid, PrincipalAxis(angle=angle, length=4 * math.sqrt(major), width=4 * math.sqrt(minor))


def nails(mask: np.ndarray) -> list[Nail]:
    """The nails of a 0/255 mask, largest outline first; each nail's region costs only its own box."""
    out = []
    for outline in outlines(mask):
        x, y, w, h = cv2.boundingRect(outline)
        inside = np.zeros((h, w), np.uint8)
        cv2.drawContours(inside, [outline], -1, 1, cv2.FILLED, offset=(-x, -y))
        region = (inside > 0) & (mask[y:y + h, x:x + w] > 0)
        out.append(Nail(outline=outline, box=(x, y, w, h), region=region))
    return out


def describe(nail: Nail, prob: np.ndarray) -> NailGeometry:
    """A nail's geometry; ``prob`` is the probability map at the mask's size."""
    (cx, cy), axis = nail.axis()
    x, y, w, h = nail.box
    inside = prob[nail.window][nail.region]
    return NailGeometry(
        area=nail.area, bounding_box=BoundingBox(x=x, y=y, width=w, height=h), centroid=(cx, cy),
        outline=nail.outline[:, 0, :].tolist(), principal_axis=axis,
        mean_probability=float(inside.mean()) if inside.size else 0.0,
    )


def geometry(mask: np.ndarray, prob: np.ndarray) -> list[NailGeometry]:
    """Every nail's geometry, largest area first."""
    found = sorted(nails(mask), key=lambda n: n.area, reverse=True)
    return [describe(n, prob) for n in found]
