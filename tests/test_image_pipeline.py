"""Decoding and validating images; masks, contours and pictures at the input's own size."""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from nailseg.api.schemas import SegmentOptions
from nailseg.errors import ApiError, ErrorCode
from nailseg.images import postprocess
from nailseg.images.codec import decode_base64, decode_image
from nailseg.images.pipeline import segment_fields, mask_for, prepare_bytes
from nailseg.model.spec import Preprocessing

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
    fields = segment_fields(prepared, prob, 0.5, SegmentOptions(return_contours=True, return_confidence=True,
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
    from nailseg.images.codec import decode_reduced

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



@pytest.mark.parametrize("kw", [{"subsampling": 2}, {"subsampling": 0}, {"progressive": True}, {"exif_orientation": 6},
                                {"exif_orientation": 3}, {"mode": "L"}])
@pytest.mark.parametrize("size", [(640, 480), (1000, 998), (300, 200), (1600, 1200)])
def test_the_turbojpeg_path_gives_pil_decoders_pixels(kw, size):
    """Reduced JPEG decodes go through simplejpeg where they can; they must be the pixels (and size) PIL's
    own decoder gives at the same scale, so the model sees exactly what it was measured on."""
    from nailseg.images.codec import _turbo_scaled, decode_opened, open_image

    kw = dict(kw)
    img = Image.fromarray(cv2.GaussianBlur(np.asarray(photo(*size)), (9, 9), 3)).convert(kw.pop("mode", "RGB"))
    if orientation := kw.pop("exif_orientation", None):
        kw["exif"] = Image.Exif()
        kw["exif"][0x0112] = orientation
    raw = encode(img, "JPEG", quality=90, **kw)
    assert (_turbo_scaled(raw, open_image(raw, LIMIT), 224) is not None) == (img.mode == "RGB")  # the path taken
    fast = decode_opened(open_image(raw, LIMIT), 224, raw)
    pil = decode_opened(open_image(raw, LIMIT), 224)
    assert fast[1] == pil[1] and fast[0].shape == pil[0].shape and fast[0].dtype == np.uint8
    assert np.array_equal(fast[0], pil[0])


def test_the_turbojpeg_path_decodes_only_the_size_whose_pixels_were_counted():
    """PIL takes a JPEG's last frame header before the scan (and checks its pixel count), libjpeg the first.
    A file with a first one declaring 65,000 x 65,000 is never given to TurboJPEG: PIL decodes it, and
    refuses it with the usual 400."""
    from nailseg.images.codec import _turbo_scaled, decode_opened, open_image

    raw = encode(photo(640, 480), "JPEG")
    sof = raw.index(b"\xff\xc0")
    huge = bytearray(raw[sof:sof + 2 + int.from_bytes(raw[sof + 2:sof + 4], "big")])
    huge[5:9] = (65_000).to_bytes(2, "big") * 2
    doubled = raw[:sof] + bytes(huge) + raw[sof:]
    img = open_image(doubled, LIMIT)
    assert img.size == (640, 480)
    assert _turbo_scaled(doubled, img, 224) is None
    with pytest.raises(ApiError) as e:
        decode_opened(img, 224, doubled)
    assert e.value.code == ErrorCode.TRUNCATED_IMAGE


def test_a_damaged_jpeg_gets_the_same_error_on_the_turbojpeg_path():
    from nailseg.images.codec import decode_opened, open_image

    raw = encode(photo(640, 480), "JPEG")
    cut = raw[: len(raw) // 2]
    with pytest.raises(ApiError) as fast:
        decode_opened(open_image(cut, LIMIT), 224, cut)
    with pytest.raises(ApiError) as pil:
        decode_opened(open_image(cut, LIMIT), 224)
    assert fast.value.code == pil.value.code == ErrorCode.TRUNCATED_IMAGE

# ---- inputs that used to escape as 500s (issue 11) -------------------------------------------

ALL_OPTIONS = SegmentOptions(return_confidence=True, return_contours=True, return_visualizations=True)


def fields_of(raw: bytes, limit: int = LIMIT) -> tuple[tuple[int, int], dict]:
    prepared = prepare_bytes(raw, Preprocessing(image_size=(32, 32)), limit)
    return prepared.size, segment_fields(prepared, np.full((32, 32), 0.7, np.float32), 0.5, ALL_OPTIONS)


def png_bytes_shape(text: str) -> tuple[int, ...]:
    return cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_UNCHANGED).shape


def png_with(chunk: bytes, size=(8, 6)) -> bytes:
    """A PNG with one extra chunk (``chunk``: type + data + CRC, as in the file) right after IHDR."""
    raw = encode(photo(*size), "PNG")
    return raw[:33] + chunk + raw[33:]


def chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    import struct
    import zlib
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) if crc is None else crc)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP"])
@pytest.mark.parametrize("size", [(1, 1), (2, 1), (1, 3)])
def test_tiny_images_get_a_mask_contours_and_pictures(fmt, size):
    (h, w), fields = fields_of(encode(photo(*size), fmt))
    assert (h, w) == size[::-1] and png_bytes_shape(fields["mask_data"]) == (h, w)
    assert (cv2.imdecode(np.frombuffer(base64.b64decode(fields["mask_data"]), np.uint8), 0) == 255).all()
    assert len(fields["contours"]) == 1 and fields["confidence_scores"].mask_mean == pytest.approx(0.7)
    assert png_bytes_shape(fields["visualizations"].overlay) == (h, w, 3)


def test_mpo_is_served_as_the_jpeg_it_is():
    buf = io.BytesIO()
    photo(60, 40).save(buf, format="MPO", save_all=True, append_images=[photo(60, 40)])
    assert Image.open(io.BytesIO(buf.getvalue())).format == "MPO"
    size, _ = fields_of(buf.getvalue())
    assert size == (40, 60)


def test_a_junk_exif_block_is_ignored_not_fatal():
    size, _ = fields_of(png_with(chunk(b"eXIf", b"junk, not TIFF at all")))
    assert size == (6, 8)


def test_a_bad_crc_in_an_ancillary_chunk_is_skipped_but_not_in_a_critical_one():
    size, _ = fields_of(png_with(chunk(b"tEXt", b"Comment\x00hello", crc=1234)))
    assert size == (6, 8)
    raw = bytearray(encode(photo(8, 6), "PNG"))
    raw[29:33] = b"\x00\x00\x00\x00"  # IHDR's CRC
    with pytest.raises(ApiError) as err:
        prepare_bytes(bytes(raw), Preprocessing(image_size=(32, 32)), LIMIT)
    assert err.value.code is ErrorCode.TRUNCATED_IMAGE


def test_png_exif_orientation_after_the_pixels_is_read_inside_the_error_mapping():
    exif = Image.Exif()
    exif[0x0112] = 6
    raw = encode(photo(60, 40), "PNG", exif=exif)
    assert fields_of(raw)[0] == (60, 40)  # turned
    with pytest.raises(ApiError) as err:  # the pixels cut short: a clean 400, not a 500
        prepare_bytes(raw[: raw.index(b"IDAT") + 40], Preprocessing(image_size=(32, 32)), LIMIT)
    assert err.value.code is ErrorCode.TRUNCATED_IMAGE


def test_sides_longer_than_65535_are_refused_before_decoding():
    with pytest.raises(ApiError) as err:
        decode_image(encode(Image.new("1", (70_000, 1)), "PNG"), LIMIT)
    assert err.value.code is ErrorCode.IMAGE_TOO_LARGE


def test_visualizations_are_drawn_at_a_bounded_size():
    (h, w), fields = fields_of(encode(photo(3000, 1000), "JPEG"))
    assert (h, w) == (1000, 3000) and png_bytes_shape(fields["mask_data"]) == (1000, 3000)
    side = postprocess.VISUALIZATION_MAX_SIDE
    assert png_bytes_shape(fields["visualizations"].overlay) == (round(1000 * side / 3000), side, 3)
    assert png_bytes_shape(fields["visualizations"].heatmap) == (round(1000 * side / 3000), side, 3)


def test_batch_pixel_budget_counts_declared_pixels_of_the_good_images_only():
    from nailseg.images.pipeline import prepare_many

    prep = Preprocessing(image_size=(32, 32))
    good = base64.b64encode(encode(photo(100, 50), "PNG")).decode()  # 5,000 pixels
    results = prepare_many([good, "bm90IGFuIGltYWdl", good], prep, LIMIT, max_total_pixels=10_000)
    assert [type(r).__name__ for r in results] == ["PreparedImage", "ApiError", "PreparedImage"]
    assert results[1].code is ErrorCode.NOT_AN_IMAGE
    with pytest.raises(ApiError) as err:
        prepare_many([good] * 3, prep, LIMIT, max_total_pixels=10_000)
    assert err.value.code is ErrorCode.BATCH_PIXELS_TOO_LARGE and err.value.status == 413


@pytest.mark.parametrize("body", [
    {"image_data": "aGk=", "threshold": "0.5"}, {"image_data": "aGk=", "threshold": True},
    {"image_data": "aGk=", "return_contours": "true"}, {"image_data": "aGk=", "return_confidence": 1},
    {"image_data": 5}, {"image_data": ["aGk="]},
])
def test_request_fields_are_strictly_typed(body):
    import json

    from pydantic import ValidationError

    from nailseg.api.schemas import SegmentRequest

    with pytest.raises(ValidationError):
        SegmentRequest.model_validate_json(json.dumps(body))


def test_integer_thresholds_are_numbers():
    from nailseg.api.schemas import SegmentRequest

    assert SegmentRequest.model_validate_json('{"image_data": "aGk=", "threshold": 1}').threshold == 1.0
    assert SegmentRequest.model_validate_json('{"image_data": "aGk=", "threshold": 0}').threshold == 0.0


def _progressive_with_scans(extra_scans: int) -> bytes:
    raw = encode(Image.new("RGB", (64, 48), (120, 80, 60)), "JPEG", progressive=True)
    last_scan = raw[raw.rfind(b"\xff\xda"):-2]
    return raw[:-2] + last_scan * extra_scans + b"\xff\xd9"


@pytest.mark.parametrize("raw, ok", [
    (_progressive_with_scans(30), True),  # ~40 scans: still decoded
    (_progressive_with_scans(1000), False),  # each scan a pass over every coefficient: a CPU bomb
    (encode(photo(), "JPEG")[:2] + b"\xff\xfe\x00\x02" * 5000 + encode(photo(), "JPEG")[2:], False),  # comments
    (encode(photo(), "JPEG")[:2] + b"\xff" * 5000 + encode(photo(), "JPEG")[2:], False),  # fill bytes
    (png_with(chunk(b"teXt", b"") * 5000), False),
    (png_with(chunk(b"teXt", b"") * 500), True),
])
def test_files_built_to_burn_cpu_are_refused_before_decoding(raw, ok):
    if ok:
        assert prepare_bytes(raw, Preprocessing(image_size=(32, 32)), LIMIT).size in ((48, 64), (6, 8))
    else:
        with pytest.raises(ApiError) as err:
            prepare_bytes(raw, Preprocessing(image_size=(32, 32)), LIMIT)
        assert err.value.code is ErrorCode.IMAGE_TOO_COMPLEX and err.value.status == 413


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (48, 64), (768, 1024)])
def test_mask_pngs_decode_to_the_same_pixels_in_libpng_and_pil(shape):
    from nailseg.images.codec import encode_png

    rng = np.random.default_rng(len(shape) + shape[0])
    mask = (rng.random(shape) > 0.7).astype(np.uint8) * 255
    png = encode_png(mask)
    via_pil = Image.open(io.BytesIO(png))
    assert via_pil.mode == "L" and via_pil.size == shape[::-1]
    assert (np.asarray(via_pil) == mask).all()
    assert (cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED) == mask).all()


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 7, 3), (5, 1, 3), (37, 53, 3), (480, 640, 3)])
def test_rgb_pngs_decode_to_the_same_pixels_in_libpng_and_pil(shape):
    """Photos (try-on, overlays, heatmaps) are PNGs with each row filtered Up: the pixels survive exactly."""
    from nailseg.images.codec import encode_png

    rgb = np.random.default_rng(shape[0]).integers(0, 256, shape, dtype=np.uint8)
    for pixels in (rgb, rgb[:, ::-1]):  # a view that is not contiguous too
        png = encode_png(pixels)
        via_pil = Image.open(io.BytesIO(png))
        assert via_pil.mode == "RGB" and np.array_equal(np.asarray(via_pil), pixels)
        via_cv2 = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(cv2.cvtColor(via_cv2, cv2.COLOR_BGR2RGB).reshape(shape), pixels)
