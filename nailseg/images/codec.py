"""Turning request bytes into a validated RGB array, and arrays back into PNG bytes.

Every failure is an ApiError with a stable code: nothing here may raise anything else
for bad input. What comes out is always an HxWx3 uint8 RGB array of the size the file
declares (EXIF orientation applied), or a fraction of it for a JPEG decoded at a reduced scale in the DCT.
"""

from __future__ import annotations

import binascii
import io
import re
import struct
import warnings
import zlib

import cv2
import numpy as np
import pybase64
import simplejpeg
from isal import isal_zlib
from PIL import Image, UnidentifiedImageError

from nailseg.errors import ApiError, ErrorCode

SUPPORTED = {"JPEG", "PNG", "BMP"}
_JPEG = {"JPEG", "MPO"}  # MPO: multi-picture JPEG (phones, 3D cameras), its first picture a plain JPEG
_DATA_URL = re.compile(r"^data:[\w/+.-]*;base64,", re.IGNORECASE)
_MAGIC = {  # formats we can name when refusing them
    b"GIF8": "GIF", b"RIFF": "WEBP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"\x00\x00\x01\x00": "ICO",
    b"%PDF": "PDF",
}
MAX_SIDE = 65_535  # JPEG's own limit
# Bounds on a file's structure, far above what cameras and encoders write, so that a small file cannot
# cost seconds of CPU: each JPEG scan is a pass over all coefficients (1,000 repeated scans of a 16 Mpx
# picture: 14 s in 125 kB), and PIL reads header segments, fill bytes and PNG chunks in Python.
MAX_JPEG_SCANS = 50  # progressive JPEGs have ~10 (an MPO's pictures and EXIF thumbnail count too)
MAX_HEADER_SEGMENTS = 1_000  # JPEG marker segments and fill bytes before the first scan; PNG chunks but IDAT
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXTENSIONS = {b"\xff\xd8\xff": ".jpg", _PNG_SIGNATURE[:4]: ".png", b"BM": ".bmp"}  # by magic bytes
_SUPPORTED_MAGIC = tuple(_EXTENSIONS)

Image.MAX_IMAGE_PIXELS = None  # we check the pixel count ourselves, with our own limit and error


def file_extension(raw: bytes) -> str:
    """A photo's file name extension by its magic bytes: .jpg, .png or .bmp (.bin for anything else)."""
    return next((ext for magic, ext in _EXTENSIONS.items() if raw.startswith(magic)), ".bin")


def decode_base64(data: str) -> bytes:
    data = _DATA_URL.sub("", data.strip(), count=1)
    try:
        raw = pybase64.b64decode(data, validate=True)  # SIMD: ~35x less CPU than the stdlib's
    except (binascii.Error, ValueError):
        # tolerate line breaks (MIME-style base64), nothing else
        try:
            raw = pybase64.b64decode("".join(data.split()), validate=True)
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
            img = Image.open(io.BytesIO(_checked_structure(raw)))
    except ApiError:
        raise
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
    if img.format not in SUPPORTED | _JPEG:
        raise ApiError(ErrorCode.UNSUPPORTED_FORMAT, f"{img.format} is not supported; send JPEG, PNG or BMP")
    w, h = img.size
    if w < 1 or h < 1:
        raise ApiError(ErrorCode.NOT_AN_IMAGE, f"image has no pixels ({w}x{h})")
    if img.format in _JPEG and (scans := raw.count(b"\xff\xda")) > MAX_JPEG_SCANS:
        raise ApiError(ErrorCode.IMAGE_TOO_COMPLEX, f"JPEG has {scans} scans; at most {MAX_JPEG_SCANS} are decoded")
    if max(w, h) > MAX_SIDE:
        raise ApiError(ErrorCode.IMAGE_TOO_LARGE, f"image is {w}x{h}; no side may be longer than {MAX_SIDE} pixels")
    if w * h > max_pixels:
        raise ApiError(ErrorCode.IMAGE_TOO_LARGE, f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels}")
    return img


def decode_image(raw: bytes, max_pixels: int) -> np.ndarray:
    """JPEG/PNG/BMP bytes -> HxWx3 uint8 RGB, EXIF orientation applied, greyscale/alpha converted."""
    return decode_opened(open_image(raw, max_pixels))[0]


def decode_reduced(raw: bytes, max_pixels: int, at_least: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Like ``decode_image``, but a JPEG is decoded at a reduced scale (in the DCT: much faster) while both
    sides stay at least ``at_least`` long. Returns the picture and the full (height, width)."""
    return decode_opened(open_image(raw, max_pixels), at_least, raw)


def decode_opened(img: Image.Image, at_least: int | None = None,
                  raw: bytes | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """An ``open_image`` result -> (upright RGB array, the full upright (height, width) it declares).

    With ``at_least``, a JPEG is decoded at a reduced scale that keeps both sides at least that long; given
    the ``raw`` bytes it was opened from, a colour JPEG is decoded by ``_turbo_scaled``, else by PIL (1/2,
    1/4 or 1/8 only)."""
    w, h = img.size
    scaled = _turbo_scaled(raw, img, at_least) if raw is not None and at_least is not None else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if scaled is None:
                if at_least is not None and img.format in _JPEG:
                    img.draft("RGB", (at_least, at_least))
                img.load()
            orientation = _orientation(img)
            if scaled is not None and orientation not in _TRANSPOSE:
                rgb = scaled
            else:
                if scaled is not None:
                    img = Image.fromarray(scaled)
                if orientation in _TRANSPOSE:
                    img = img.transpose(_TRANSPOSE[orientation])
                rgb = _rgb_array(img)
    except OSError as e:
        raise ApiError(ErrorCode.TRUNCATED_IMAGE, f"image data is truncated or corrupt ({e})") from None
    except Exception as e:
        raise ApiError(ErrorCode.NOT_AN_IMAGE, f"image cannot be decoded ({type(e).__name__})") from None
    return rgb, ((w, h) if orientation in _TRANSPOSED else (h, w))


def _turbo_scaled(raw: bytes, img: Image.Image, at_least: int) -> np.ndarray | None:
    """A colour JPEG decoded by TurboJPEG (simplejpeg) at the scale PIL's draft mode picks (1/2, 1/4 or
    1/8 while both sides stay at least ``at_least``): the same pixels as PIL's decoder, ~250 us less
    per photo (no chunked load in Python, no copy out of the PIL image). libjpeg-turbo's other n/8 scales
    would save ~90 us more, but change the model's input: test Dice 0.8834 -> 0.8829.

    None where this path does not apply (CMYK, greyscale, not a JPEG) or the file fails in it: PIL then
    decodes it, and names the error for a damaged file exactly as before."""
    if img.format not in _JPEG or img.mode != "RGB":
        return None
    w, h = img.size
    scale = next((s for s in (8, 4, 2) if min(w // at_least, h // at_least) >= s), 1)
    size = (-(-h // scale), -(-w // scale))
    try:
        if simplejpeg.decode_jpeg_header(raw)[:2] != (h, w):  # not the size whose pixel count was checked
            return None
        rgb = simplejpeg.decode_jpeg(raw, colorspace="RGB", min_height=size[0], min_width=size[1])
    except Exception:  # ValueError for corrupt, truncated or unsupported data (strict mode)
        return None
    return rgb if rgb.shape[:2] == size else None


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


def _checked_structure(raw: bytes) -> bytes:
    """The file as PIL should read it: header bounds checked (IMAGE_TOO_COMPLEX), and a PNG's ancillary
    chunks (tEXt, eXIf, ...) with a bad CRC dropped, which the PNG spec lets a decoder skip (PIL refuses
    the whole file). Anything else that does not parse is left to PIL to judge."""
    if raw.startswith(b"\xff\xd8"):
        _check_jpeg_header(raw)
        return raw
    if not raw.startswith(_PNG_SIGNATURE):
        return raw
    broken, pos, count = [], len(_PNG_SIGNATURE), 0
    while pos + 12 <= len(raw):
        length, kind = struct.unpack_from(">I4s", raw, pos)
        end = pos + 12 + length
        if end > len(raw) or kind == b"IEND":
            break
        count += kind != b"IDAT"
        if count > MAX_HEADER_SEGMENTS:
            raise ApiError(ErrorCode.IMAGE_TOO_COMPLEX, f"PNG has over {MAX_HEADER_SEGMENTS} chunks besides IDAT")
        if kind[0] & 0x20 and struct.unpack_from(">I", raw, end - 4)[0] != zlib.crc32(raw[pos + 4:end - 4]):
            broken.append((pos, end))
        pos = end
    if not broken:
        return raw
    starts = [0] + [end for _, end in broken]
    stops = [start for start, _ in broken] + [len(raw)]
    return b"".join(raw[a:b] for a, b in zip(starts, stops))


def _check_jpeg_header(raw: bytes) -> None:
    pos, count = 2, 0
    while pos + 4 <= len(raw) and raw[pos] == 0xFF:
        count += 1
        if count > MAX_HEADER_SEGMENTS:
            raise ApiError(ErrorCode.IMAGE_TOO_COMPLEX,
                           f"JPEG has over {MAX_HEADER_SEGMENTS} marker segments or fill bytes before its first scan")
        marker = raw[pos + 1]
        if marker == 0xDA:
            return
        if marker in (0xFF, 0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # a fill byte, or a marker without length
            pos += 1 if marker == 0xFF else 2
            continue
        pos += 2 + struct.unpack_from(">H", raw, pos + 2)[0]


def encode_png(array: np.ndarray) -> bytes:
    """uint8 greyscale (H, W) or RGB (H, W, 3) -> PNG bytes."""
    if array.ndim == 2:
        return _greyscale_png(array)
    return _deflated_png(array.reshape(array.shape[0], -1), _RGB, up=True, width=array.shape[1])


def _greyscale_png(mask: np.ndarray) -> bytes:
    return _deflated_png(mask, _GREY, up=False)


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    """uint8 RGB (H, W, 3) -> baseline JPEG bytes (TurboJPEG)."""
    return simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality=quality, colorspace="RGB")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


_GREY, _RGB = 0, 2  # PNG colour types


def _deflated_png(rows: np.ndarray, colour_type: int, up: bool, width: int | None = None) -> bytes:
    """An 8-bit PNG of ``rows`` (H, bytes a row), deflated by ISA-L (level 1), every row unfiltered or, with
    ``up``, filtered Up (the difference to the row above, computed by numpy).

    Masks are long runs of 0 and 255, best left unfiltered; photos (the try-on, overlays) are filtered Up.
    Both are smaller and cheaper than libpng's (cv2.imencode): docs/performance.md, bench/results/.
    """
    h, n = rows.shape
    framed = np.empty((h, n + 1), np.uint8)  # each row: its filter type, then its bytes
    if up and h > 1:
        framed[:, 0] = 2
        framed[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=framed[1:, 1:])  # uint8: wraps modulo 256, as PNG's Up does
    else:
        framed[:, 0] = 0
        framed[:, 1:] = rows
    header = struct.pack(">IIBBBBB", width or n, h, 8, colour_type, 0, 0, 0)  # deflate, no interlace
    return (_PNG_SIGNATURE + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", isal_zlib.compress(framed, 1)) + _png_chunk(b"IEND", b""))


def b64_png(array: np.ndarray) -> str:
    return pybase64.b64encode_as_string(encode_png(array))
