"""Per-nail geometry (nailseg/images/geometry.py): the shapes users get with return_nails, and the outlines
that contours, polygons, the try-on and the COCO export share."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from pycocotools import mask as pycocotools_mask

from nailseg.images import geometry, maskformats, postprocess


def ellipse_mask(shape=(300, 400), centre=(200, 150), axes=(90, 30), angle=30.0) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, centre, axes, angle, 0, 360, 255, cv2.FILLED)
    return mask


@pytest.mark.parametrize("angle", [-60.0, 0.0, 30.0, 89.0])
def test_principal_axis_of_an_ellipse(angle):
    mask = ellipse_mask(angle=angle)
    (nail,) = geometry.geometry(mask, np.full(mask.shape, 0.75, np.float32))
    assert abs(((nail.principal_axis.angle - angle) + 90) % 180 - 90) < 1.0  # the same line, either way
    assert nail.principal_axis.length == pytest.approx(180, rel=0.02)  # full axes: 2 x the semi-axes
    assert nail.principal_axis.width == pytest.approx(60, rel=0.03)
    assert nail.centroid == pytest.approx((200, 150), abs=0.5)
    assert nail.area == np.count_nonzero(mask)
    assert nail.area == pytest.approx(math.pi * 90.5 * 30.5, rel=0.01)  # cv2.ellipse fills its edge too
    assert nail.mean_probability == pytest.approx(0.75)
    x, y, w, h = cv2.boundingRect(mask)
    assert (nail.bounding_box.x, nail.bounding_box.y, nail.bounding_box.width, nail.bounding_box.height) == (x, y, w, h)
    assert -90 < nail.principal_axis.angle <= 90


def test_nails_largest_first_with_their_own_probabilities():
    mask = np.zeros((200, 300), np.uint8)
    prob = np.zeros(mask.shape, np.float32)
    cv2.circle(mask, (50, 50), 10, 255, cv2.FILLED)
    cv2.circle(mask, (200, 120), 40, 255, cv2.FILLED)
    prob[:, :150], prob[:, 150:] = 0.6, 0.9
    small_hole = mask.copy()
    cv2.circle(small_hole, (200, 120), 5, 0, cv2.FILLED)  # a hole: its pixels are not the nail's
    nails = geometry.geometry(small_hole, prob)
    assert [round(n.mean_probability, 3) for n in nails] == [0.9, 0.6]
    assert nails[0].area == np.count_nonzero(small_hole[:, 150:])
    assert sum(n.area for n in nails) == np.count_nonzero(small_hole)
    assert nails[0].outline == postprocess.contours(small_hole)[0].points  # the same outline


def test_empty_mask_has_no_nails():
    mask = np.zeros((64, 64), np.uint8)
    assert geometry.geometry(mask, mask.astype(np.float32)) == []
    assert postprocess.contours(mask) == [] and maskformats.polygons(mask) == []


def test_contours_and_polygons_are_as_before_from_the_shared_outlines():
    """Before the outlines moved to geometry.py, contours and polygons traced the mask themselves."""
    rng = np.random.default_rng(3)
    mask = (cv2.GaussianBlur(rng.random((240, 320)).astype(np.float32), (0, 0), 6) > 0.5).astype(np.uint8) * 255
    found, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    found = sorted(found, key=cv2.contourArea, reverse=True)
    assert len(found) > 3
    assert [c.points for c in postprocess.contours(mask)] == [[tuple(p) for p in f[:, 0, :].tolist()] for f in found]
    assert maskformats.polygons(mask) == [f.reshape(-1).tolist() for f in found if len(f) >= 3]


def test_a_nail_region_as_coco_rle_decodes_to_that_nail_alone():
    mask = ellipse_mask()
    cv2.circle(mask, (40, 40), 12, 255, cv2.FILLED)
    for nail in geometry.nails(mask):
        x, y, _, _ = nail.box
        rle = maskformats.coco_rle_at(nail.region, x, y, *mask.shape)
        alone = np.zeros(mask.shape, np.uint8)
        alone[nail.window] = nail.region
        assert rle.counts == maskformats.coco_rle(alone * 255).counts
        decoded = pycocotools_mask.decode({"size": list(rle.size), "counts": rle.counts.encode()})
        assert np.array_equal(decoded, alone)
