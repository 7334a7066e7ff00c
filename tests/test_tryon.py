"""The try-on renderer (nailseg/images/tryon.py): polish, not paint, and nothing else of the photo touched."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from nailseg.images import geometry, postprocess, tryon

RED = tryon.Polish((200, 20, 60), opacity=1.0, finish="gloss")


def shaded_photo(shape=(240, 320)) -> np.ndarray:
    """Skin-coloured, with a lightness gradient and a bright spot: shading the polish must keep."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 0.55 + 0.35 * xs / w + 0.25 * np.exp(-((xs - 170) ** 2 + (ys - 110) ** 2) / 150)
    skin = np.array([224, 172, 150], np.float32)
    return np.clip(skin * light[..., None], 0, 255).astype(np.uint8)


def nail_probability(shape=(240, 320)) -> np.ndarray:
    """A soft elliptical nail, as the model's map looks once resized up to the photo."""
    hard = np.zeros(shape, np.float32)
    cv2.ellipse(hard, (160, 120), (70, 35), 20, 0, 360, 1.0, cv2.FILLED)
    return cv2.GaussianBlur(hard, (0, 0), 3)


def painted(polish=RED, threshold=0.5):
    rgb, prob = shaded_photo(), nail_probability()
    mask = postprocess.mask_from(prob, threshold)
    return rgb, prob, mask, tryon.paint(rgb, prob, threshold, geometry.nails(mask), polish, model_side=256)


def lab(rgb):
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)


def test_pixels_away_from_the_nails_are_the_photo_exactly():
    rgb, _, mask, out = painted()
    reach = tryon.edge_reach(*mask.shape)
    near = cv2.dilate(mask, np.ones((2 * reach + 3, 2 * reach + 3), np.uint8)) > 0
    assert np.array_equal(out[~near], rgb[~near])
    assert not np.array_equal(out[mask > 0], rgb[mask > 0])


def test_nail_pixels_take_the_colour_and_keep_the_photo_s_shading():
    rgb, _, mask, out = painted(tryon.Polish((200, 20, 60), 1.0, "matte"))
    inside = mask > 0
    before, after, target = lab(rgb)[inside], lab(out)[inside], RED.lab
    chroma_gap = lambda px: np.linalg.norm(px[:, 1:] - target[1:], axis=1).mean()  # noqa: E731
    assert chroma_gap(after) < 0.25 * chroma_gap(before)
    assert abs(after[:, 0].mean() - target[0]) < 10  # the polish's lightness, not the skin's
    assert np.corrcoef(before[:, 0], after[:, 0])[0, 1] > 0.8  # the shading is still the photo's


def test_gloss_adds_a_highlight_and_matte_flattens_it():
    _, _, mask, gloss = painted(tryon.Polish(RED.colour, 1.0, "gloss"))
    _, _, _, matte = painted(tryon.Polish(RED.colour, 1.0, "matte"))
    inside = mask > 0
    lg, lm = lab(gloss)[inside][:, 0], lab(matte)[inside][:, 0]
    assert np.percentile(lg, 99) > np.percentile(lm, 99) + 15
    assert lm.std() < lg.std()


def test_edges_are_soft_not_jagged():
    rgb, prob, mask, out = painted()
    change = np.abs(out.astype(int) - rgb.astype(int)).sum(axis=2)
    full = np.median(change[prob > 0.95])
    edge = (prob > 0.3) & (prob < 0.7)
    partial = (change[edge] > 0.1 * full) & (change[edge] < 0.9 * full)
    assert partial.mean() > 0.5  # most edge pixels are partly painted


def test_opacity_scales_the_change():
    rgb, _, mask, full = painted(tryon.Polish(RED.colour, 1.0, "gloss"))
    _, _, _, half = painted(tryon.Polish(RED.colour, 0.5, "gloss"))
    inside = mask > 0
    d_full = np.abs(full[inside].astype(int) - rgb[inside]).mean()
    d_half = np.abs(half[inside].astype(int) - rgb[inside]).mean()
    assert d_half == pytest.approx(d_full / 2, rel=0.15)


def test_no_nails_leaves_the_photo_as_it_was():
    rgb = shaded_photo()
    out = tryon.paint(rgb, np.zeros(rgb.shape[:2], np.float32), 0.5, [], RED)
    assert np.array_equal(out, rgb) and out is not rgb


@pytest.mark.parametrize("text, colour", [("#C8143C", (200, 20, 60)), ("#00ff7f", (0, 255, 127))])
def test_polish_colour_parses(text, colour):
    assert tryon.Polish.parse(text, 0.8, "matte") == tryon.Polish(colour, 0.8, "matte")
