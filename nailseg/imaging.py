"""Turning request bytes into a validated RGB array, and arrays back into PNG bytes.

Every failure is an ApiError with a stable code: nothing here may raise anything else
for bad input. What comes out is always an HxWx3 uint8 RGB array of the size the file
declares (EXIF orientation applied), or 1/2, 1/4, 1/8 of it for a JPEG decoded in the DCT.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import struct
import warnings
import zlib

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from nailseg.errors import ApiError, ErrorCode

SUPPORTED = {"JPEG", "PNG", "BMP"}
_AS_JPEG = {"MPO"}  # multi-picture JPEG (phones, 3D cameras): its first picture is a plain JPEG
_DATA_URL = re.compile(r"^data:[\w/+.-]*;base64,", re.IGNORECASE)
_MAGIC = {  # formats we can name when refusing them
    b"GIF8": "GIF", b"RIFF": "WEBP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"\x00\x00\x01\x00": "ICO",
    b"%PDF": "PDF",
}
MAX_SIDE = 65_535  # JPEG's own limit; libpng (the mask's encoder) refuses sides over 1,000,000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SUPPORTED_MAGIC = (b"\xff\xd8\xff", _PNG_SIGNATURE[:4], b"BM")

Image.MAX_IMAGE_PIXELS = None  # we check the pixel count ourselves, with our own limit and error


def decode_base64(data: str) -> bytes:
    data = _DATA_URL.sub("", data.strip(), count=1)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        # tolerate line breaks (MIME-style base64), nothing else
        try:
            raw = base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(ErrorCode.INVALID_BASE64, "image_data is not valid base64") from None
    if not raw:
        raise ApiError(ErrorCode.EMPTY_IMAGE, "image_data decodes to zero bytes")
    return raw


_EXIF_ORIENTATION = 0x0112
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def open_image(raw: bytes, max_pixels: int) -> Image.Image:
    """Read the header only: check the format and the pixel count (413 before any pixel is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(_without_broken_ancillary_chunks(raw)))
    except UnidentifiedImageError:
        fmt = next((name for magic, name in _MAGIC.items() if raw.startswith(magic)), None)
        if fmt:
            raise ApiError(ErrorCode.UNSUPPORTED_FORMAT, f"{fmt} is not supported; send JPEG, PNG or BMP") from None
        if raw.startswith(_SUPPORTED_MAGIC):
            raise ApiError(ErrorCode.TRUNCATED_IMAGE, "image header is truncated or corrupt") from None
        raise ApiError(ErrorCode.NOT_AN_IMAGE, "image_data is not a JPEG, PNG or BMP image") from None
    except Exception as e:  # a damaged header can raise almost anything inside PIL
        if raw.startswith(_SUPPORTED_MAGIC):
            raise ApiError(ErrorCode.TRUNCATED_IMAGE, f"image data is truncated or corrupt ({e})") from None
        raise ApiError(ErrorCode.NOT_AN_IMAGE, f"image header cannot be read ({type(e).__name__})") from None
    if img.format not in SUPPORTED | _AS_JPEG:
        raise ApiError(ErrorCode.UNSUPPORTED_FORMAT, f"{img.format} is not supported; send JPEG, PNG or BMP")
    w, h = img.size
    if w < 1 or h < 1:
        raise ApiError(ErrorCode.NOT_AN_IMAGE, f"image has no pixels ({w}x{h})")
    if max(w, h) > MAX_SIDE:
        raise ApiError(ErrorCode.IMAGE_TOO_LARGE, f"image is {w}x{h}; no side may be longer than {MAX_SIDE} pixels")
    if w * h > max_pixels:
        raise ApiError(ErrorCode.IMAGE_TOO_LARGE, f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels}")
    return img


def decode_image(raw: bytes, max_pixels: int) -> np.ndarray:
    """JPEG/PNG/BMP bytes -> HxWx3 uint8 RGB, EXIF orientation applied, greyscale/alpha converted."""
    return decode_opened(open_image(raw, max_pixels))[0]


def decode_reduced(raw: bytes, max_pixels: int, at_least: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Like ``decode_image``, but a JPEG is decoded at 1/2, 1/4 or 1/8 scale (in the DCT: much faster)
    while both sides stay at least ``at_least`` long. Returns the picture and the full (height, width)."""
    return decode_opened(open_image(raw, max_pixels), at_least)


def decode_opened(img: Image.Image, at_least: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """An ``open_image`` result -> (upright RGB array, the full upright (height, width) it declares)."""
    w, h = img.size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if at_least is not None and img.format in {"JPEG", *_AS_JPEG}:
                img.draft("RGB", (at_least, at_least))
            img.load()
            orientation = _orientation(img)
            if orientation in _TRANSPOSE:
                img = img.transpose(_TRANSPOSE[orientation])
            rgb = _rgb_array(img)
    except ApiError:
        raise
    except OSError as e:
        raise ApiError(ErrorCode.TRUNCATED_IMAGE, f"image data is truncated or corrupt ({e})") from None
    except Exception as e:
        raise ApiError(ErrorCode.NOT_AN_IMAGE, f"image cannot be decoded ({type(e).__name__})") from None
    return rgb, ((w, h) if orientation in _TRANSPOSED else (h, w))


def _orientation(img: Image.Image) -> int:
    """EXIF orientation (1-8) of a loaded image; 1 (as stored) when the EXIF block is missing or junk."""
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block does not make a broken picture
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _rgb_array(img: Image.Image) -> np.ndarray:
    if img.mode == "RGB":
        return np.asarray(img)
    if img.mode.startswith("I"):  # 16-bit (I;16*) or 32-bit greyscale: keep the high byte
        grey = (np.clip(np.asarray(img, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        return cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2RGB)
    return np.asarray(img.convert("RGB"))


def _without_broken_ancillary_chunks(raw: bytes) -> bytes:
    """A PNG minus the ancillary chunks (tEXt, eXIf, ...) whose CRC is wrong, which the PNG spec lets a
    decoder skip (PIL refuses the whole file). Critical chunks and anything unparsable are left to PIL."""
    if not raw.startswith(_PNG_SIGNATURE):
        return raw
    broken, pos = [], len(_PNG_SIGNATURE)
    while pos + 12 <= len(raw):
        length, kind = struct.unpack_from(">I4s", raw, pos)
        end = pos + 12 + length
        if end > len(raw) or kind == b"IEND":
            break
        if kind[0] & 0x20 and struct.unpack_from(">I", raw, end - 4)[0] != zlib.crc32(raw[pos + 4:end - 4]):
            broken.append((pos, end))
        pos = end
    if not broken:
        return raw
    starts = [0] + [end for _, end in broken]
    stops = [start for start, _ in broken] + [len(raw)]
    return b"".join(raw[a:b] for a, b in zip(starts, stops))


def encode_png(array: np.ndarray) -> bytes:
    """uint8 greyscale (H, W) or RGB (H, W, 3) -> PNG bytes."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def b64_png(array: np.ndarray) -> str:
    return base64.b64encode(encode_png(array)).decode("ascii")
