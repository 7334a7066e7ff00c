"""Decoding and validating images; masks, contours and pictures at the input's own size."""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from nailseg import postprocess
from nailseg.errors import ApiError, ErrorCode
from nailseg.imaging import decode_base64, decode_image
from nailseg.pipeline import finish, mask_for, prepare_bytes
from nailseg.preprocess import Preprocessing
from nailseg.schemas import SegmentOptions

LIMIT = 10_000_000


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def photo(w=60, h=40) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP"])
def test_supported_formats_decode_to_rgb(fmt):
    rgb = decode_image(encode(photo(), fmt), LIMIT)
    assert rgb.shape == (40, 60, 3) and rgb.dtype == np.uint8


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "I;16"])
def test_greyscale_alpha_and_palette_images_become_rgb(mode):
    rgb = decode_image(encode(Image.new(mode, (7, 5)), "PNG"), LIMIT)
    assert rgb.shape == (5, 7, 3)


def test_exif_orientation_is_honoured():
    img = Image.new("RGB", (60, 40), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 10))  # white square at the top left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    rgb = decode_image(encode(img, "JPEG", exif=exif, quality=95), LIMIT)
    assert rgb.shape == (60, 40, 3)
    assert rgb[:10, -10:].mean() > 200 and rgb[:10, :10].mean() < 50  # now at the top right


@pytest.mark.parametrize("data, code", [
    (encode(photo(), "GIF"), ErrorCode.UNSUPPORTED_FORMAT),
    (encode(photo(), "WEBP"), ErrorCode.UNSUPPORTED_FORMAT),
    (encode(photo(), "TIFF"), ErrorCode.UNSUPPORTED_FORMAT),
    (b"just some text", ErrorCode.NOT_AN_IMAGE),
    (encode(photo(), "JPEG")[:300], ErrorCode.TRUNCATED_IMAGE),
    (encode(photo(), "PNG")[:120], ErrorCode.TRUNCATED_IMAGE),
])
def test_bad_images_get_their_own_error_codes(data, code):
    with pytest.raises(ApiError) as err:
        decode_image(data, LIMIT)
    assert err.value.code is code and err.value.status in (400, 413, 415)


def test_decompression_bomb_is_refused_before_decoding():
    bomb = encode(Image.new("1", (20_000, 20_000)), "PNG")  # 400 Mpx in a few kB
    assert len(bomb) < 100_000
    with pytest.raises(ApiError) as err:
        decode_image(bomb, LIMIT)
    assert err.value.code is ErrorCode.IMAGE_TOO_LARGE


@pytest.mark.parametrize("text, code", [("@@not base64@@", ErrorCode.INVALID_BASE64), ("", ErrorCode.EMPTY_IMAGE),
                                        ("abc", ErrorCode.INVALID_BASE64)])
def test_bad_base64(text, code):
    with pytest.raises(ApiError) as err:
        decode_base64(text)
    assert err.value.code is code


def test_data_url_prefix_and_line_breaks_are_accepted():
    raw = encode(photo(), "PNG")
    b64 = base64.b64encode(raw).decode()
    assert decode_base64("data:image/png;base64," + b64) == raw
    assert decode_base64("\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))) == raw


def test_mask_and_contours_are_in_the_input_images_pixel_coordinates():
    prep = Preprocessing(image_size=(32, 32))
    prepared = prepare_bytes(encode(photo(200, 100), "PNG"), prep, LIMIT)
    assert prepared.model_input.shape == (32, 32, 3)
    prob = np.zeros((32, 32), np.float32)
    prob[8:16, 16:24] = 1.0  # a square in model space: x 16..24, y 8..16 of 32
    fields = finish(prepared, prob, 0.5, SegmentOptions(return_contours=True, return_confidence=True,
                                                        return_visualizations=True))
    mask = cv2.imdecode(np.frombuffer(base64.b64decode(fields["mask_data"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (100, 200) and set(np.unique(mask)) == {0, 255}
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() - 200 * 20 / 32) < 3 and abs(ys.mean() - 100 * 12 / 32) < 3
    (contour,) = fields["contours"]
    box = contour.bounding_box
    assert abs(box.x - 200 * 16 / 32) <= 4 and abs(box.width - 200 * 8 / 32) <= 8
    assert abs(box.y - 100 * 8 / 32) <= 3 and abs(box.height - 100 * 8 / 32) <= 6
    assert contour.area == pytest.approx((mask > 0).sum(), rel=0.15)
    c = fields["confidence_scores"]
    assert c.mask_mean > 0.5 > c.background_mean and 0 < c.overall_mean < 0.2
    for picture in (fields["visualizations"].overlay, fields["visualizations"].heatmap):
        img = Image.open(io.BytesIO(base64.b64decode(picture)))
        assert img.format == "PNG" and img.size == (200, 100)


def test_threshold_decides_the_mask():
    prob = np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)
    assert (postprocess.mask_from(prob, 0.25) > 0).sum() > (postprocess.mask_from(prob, 0.75) > 0).sum()
    assert (postprocess.mask_from(prob, 0.0) > 0).all() and not (postprocess.mask_from(prob, 1.01) > 0).any()


def test_large_jpeg_is_decoded_reduced_but_masked_at_full_size():
    from nailseg.imaging import decode_reduced

    big = photo(1600, 1200).resize((1600, 1200))
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb, size = decode_reduced(encode(big, "JPEG", exif=exif), LIMIT, at_least=192)
    assert size == (1600, 1200)  # displayed (rotated) height, width
    assert rgb.shape == (400, 300, 3)  # 1/4 scale still covers 192
    prepared = prepare_bytes(encode(big, "JPEG"), Preprocessing(image_size=(192, 192)), LIMIT)
    assert prepared.size == (1200, 1600) and prepared.model_input.shape == (192, 192, 3)
    _, mask = mask_for(prepared, np.zeros((192, 192), np.float32), 0.5)
    assert mask.shape == (1200, 1600)
