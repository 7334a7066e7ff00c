"""Property: any byte string gives a 4xx ApiError with a known image code, or an image of the size
its file declares (EXIF-rotated), which ``segment_fields`` turns into a mask, contours and pictures.

Bounded for CI: each test has a fixed number of examples; with CI=true they are derandomized
(the "ci" profile in conftest.py), so a CI run always tries the same inputs.
"""

from __future__ import annotations

import base64
import io
import warnings

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.mutated_images import (
    PNG_SIGNATURE,
    declare_size,
    flip,
    lie_about_length,
    mutated_corpus,
    seed_files,
    truncate,
)
from PIL import Image

from nailseg.api.schemas import SegmentOptions
from nailseg.errors import ApiError, ErrorCode
from nailseg.images import postprocess
from nailseg.images.codec import decode_image
from nailseg.images.pipeline import segment_fields, prepare_bytes
from nailseg.model.spec import Preprocessing

LIMIT = 4_000_000
PREP = Preprocessing(image_size=(32, 32))
ALL_OPTIONS = SegmentOptions(return_confidence=True, return_contours=True, return_visualizations=True)
IMAGE_ERRORS = {ErrorCode.NOT_AN_IMAGE, ErrorCode.TRUNCATED_IMAGE, ErrorCode.UNSUPPORTED_FORMAT,
                ErrorCode.IMAGE_TOO_LARGE, ErrorCode.IMAGE_TOO_COMPLEX}
SEEDS = seed_files()
FUZZ = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
seed_names = st.sampled_from(sorted(SEEDS))


def png_shape(text: str) -> tuple[int, ...]:
    return cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_UNCHANGED).shape


def header_size(raw: bytes) -> tuple[int, int] | None:
    """(height, width) as PIL reads it from the header, independently of the service's code."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w, h = Image.open(io.BytesIO(raw)).size
    except Exception:
        return None
    return h, w


def check(raw: bytes, displayed: tuple[int, int] | None = None) -> str:
    """The property, for one input: returns "ok" or the error code."""
    try:
        prepared = prepare_bytes(raw, PREP, LIMIT)
    except ApiError as e:
        assert e.code in IMAGE_ERRORS and 400 <= e.status < 500 and e.message
        return e.code.value
    h, w = prepared.size
    assert h >= 1 and w >= 1 and h * w <= LIMIT
    if displayed is not None:
        assert prepared.size == displayed
    declared = header_size(raw)
    if declared is not None:
        assert prepared.size in (declared, declared[::-1])  # as stored, or turned by its EXIF orientation
    assert prepared.model_input.shape == (32, 32, 3) and prepared.model_input.dtype == np.uint8
    assert decode_image(raw, LIMIT).shape == (h, w, 3)  # the full decode agrees with the declared size
    prob = np.random.default_rng(h * w).random((32, 32), dtype=np.float32)
    fields = segment_fields(prepared, prob, 0.5, ALL_OPTIONS)
    assert png_shape(fields["mask_data"]) == (h, w)
    for c in fields["contours"]:
        box = c.bounding_box
        assert 0 <= box.x and box.x + box.width <= w and 0 <= box.y and box.y + box.height <= h
    assert 0 <= fields["confidence_scores"].overall_mean <= 1
    pictures = fields["visualizations"]
    assert png_shape(pictures.overlay)[:2] == png_shape(pictures.heatmap)[:2] == postprocess.visualization_size(h, w)
    return "ok"


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_file_decodes_at_its_displayed_size(name):
    raw, displayed = SEEDS[name]
    assert check(raw, displayed) == "ok"


@FUZZ
@given(st.binary(max_size=4096))
@example(b"")
@example(b"BM")
def test_arbitrary_bytes(raw):
    check(raw)


@FUZZ
@given(st.sampled_from([b"\xff\xd8\xff", b"\xff\xd8\xff\xe0", PNG_SIGNATURE, PNG_SIGNATURE[:4], b"BM", b"GIF89a",
                        b"RIFF", b"II*\x00"]), st.binary(max_size=2048))
def test_a_known_signature_then_anything(magic, rest):
    check(magic + rest)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_truncation_at_every_cut_point(name):
    raw, displayed = SEEDS[name]
    outcomes = {check(truncate(raw, cut), displayed) for cut in range(1, len(raw))}
    assert outcomes & {ErrorCode.TRUNCATED_IMAGE.value, ErrorCode.NOT_AN_IMAGE.value}  # cuts are noticed


@FUZZ
@given(seed_names, st.lists(st.tuples(st.integers(0, 63), st.integers(1, 255)), min_size=1, max_size=4))
def test_byte_flips_in_the_header(name, flips):
    check(flip(SEEDS[name][0], flips))


@FUZZ
@given(seed_names, st.lists(st.tuples(st.integers(0, 2**20), st.integers(1, 255)), min_size=1, max_size=12))
def test_byte_flips_anywhere(name, flips):
    check(flip(SEEDS[name][0], flips))


@FUZZ
@given(seed_names, st.integers(0, 15), st.one_of(st.sampled_from([0, 1, 2**16 - 1, 2**31, 2**32 - 1]),
                                                st.integers(0, 2**32 - 1)))
def test_chunk_and_segment_length_lies(name, which, length):
    check(lie_about_length(SEEDS[name][0], which, length))


@FUZZ
@given(seed_names, st.one_of(st.integers(1, 3000), st.integers(1, 2**31 - 1)),
       st.one_of(st.integers(1, 3000), st.integers(1, 2**31 - 1)))
@example("png-rgb", 6000, 6000)
@example("bmp", 1, 4_000_000)
def test_huge_declared_sizes_in_tiny_files(name, width, height):
    check(declare_size(SEEDS[name][0], width, height))


def test_the_e2e_corpus_holds_the_property_in_process():
    """The corpus tests/test_e2e_mutated.py sends to a real server: every kind of damage occurs in it."""
    outcomes = [check(raw) for _, raw in mutated_corpus(160)]
    assert outcomes.count("ok") > 10 and ErrorCode.TRUNCATED_IMAGE.value in outcomes
