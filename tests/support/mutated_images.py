"""Small real image files of every kind the service accepts, and seeded ways to damage them.

Shared by the property-based tests of the decode path (tests/test_fuzz_decode.py) and the
end-to-end runs of the same mutated corpus against a real server (tests/test_e2e_mutated.py,
tests/test_e2e_oip.py), with what the decode path says of each file in-process (``expected``).
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image

from nailseg.errors import ApiError
from nailseg.images.pipeline import prepare_bytes
from nailseg.model.spec import Preprocessing

W, H = 40, 24  # stored size of every seed file (the EXIF-rotated ones display as H x W)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _picture() -> Image.Image:
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([x * 255 // W, y * 255 // H, (x + y) * 3 % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb)


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _rotated_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees: H wide, W high
    return exif


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def interlaced_png(img: Image.Image) -> bytes:
    """Adam7-interlaced RGB PNG (PIL reads these but cannot write them)."""
    rgb = np.asarray(img.convert("RGB"))
    rows = []
    for y0, x0, dy, dx in ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2),
                           (1, 0, 2, 1)):
        sub = rgb[y0::dy, x0::dx]
        if sub.size:
            rows += [b"\x00" + row.tobytes() for row in sub]
    ihdr = struct.pack(">IIBBBBB", img.width, img.height, 8, 2, 0, 0, 1)
    return (PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + png_chunk(b"IEND", b""))


def seed_files() -> dict[str, tuple[bytes, tuple[int, int]]]:
    """name -> (file, displayed (height, width))."""
    img = _picture()
    upright, turned = (H, W), (W, H)
    return {
        "jpeg": (_save(img, "JPEG", quality=90), upright),
        "jpeg-progressive": (_save(img, "JPEG", progressive=True), upright),
        "jpeg-cmyk": (_save(img.convert("CMYK"), "JPEG"), upright),
        "jpeg-grey": (_save(img.convert("L"), "JPEG"), upright),
        "jpeg-exif-rotated": (_save(img, "JPEG", exif=_rotated_exif()), turned),
        "mpo": (_save(img, "MPO", save_all=True, append_images=[img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]),
                upright),
        "png-rgb": (_save(img, "PNG"), upright),
        "png-palette": (_save(img.convert("P"), "PNG"), upright),
        "png-16bit": (_save(img.convert("I;16"), "PNG"), upright),
        "png-rgba": (_save(img.convert("RGBA"), "PNG"), upright),
        "png-grey-alpha": (_save(img.convert("LA"), "PNG"), upright),
        "png-interlaced": (interlaced_png(img), upright),
        "png-exif-rotated": (_save(img, "PNG", exif=_rotated_exif()), turned),
        "bmp": (_save(img, "BMP"), upright),
        "bmp-palette": (_save(img.convert("P"), "BMP"), upright),
        "bmp-1bit": (_save(img.convert("1"), "BMP"), upright),
    }


# ---- damage ----------------------------------------------------------------------------------

def truncate(raw: bytes, cut: int) -> bytes:
    return raw[:cut]


def flip(raw: bytes, flips: list[tuple[int, int]]) -> bytes:
    """XOR each (position, non-zero mask) into the file (positions wrap around its length)."""
    out = bytearray(raw)
    for pos, mask in flips:
        out[pos % len(out)] ^= mask
    return bytes(out)


def png_chunks(raw: bytes) -> list[tuple[int, bytes]]:
    """(offset, type) of each chunk of a well-formed PNG."""
    out, pos = [], len(PNG_SIGNATURE)
    while pos + 12 <= len(raw):
        length, kind = struct.unpack_from(">I4s", raw, pos)
        out.append((pos, kind))
        pos += 12 + length
    return out


def jpeg_segments(raw: bytes) -> list[int]:
    """Offsets of the length fields of a JPEG's marker segments up to the first scan."""
    out, pos = [], 2
    while pos + 4 <= len(raw) and raw[pos] == 0xFF:
        marker = raw[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        out.append(pos + 2)
        if marker == 0xDA:
            break
        pos += 2 + struct.unpack_from(">H", raw, pos + 2)[0]
    return out


def lie_about_length(raw: bytes, which: int, length: int) -> bytes:
    """Set the length field of one PNG chunk or JPEG segment (the CRC is left as it was)."""
    out = bytearray(raw)
    if raw.startswith(PNG_SIGNATURE):
        chunks = png_chunks(raw)
        pos, _ = chunks[which % len(chunks)]
        out[pos:pos + 4] = struct.pack(">I", length % 2**32)
    elif raw.startswith(b"\xff\xd8"):
        fields = jpeg_segments(raw)
        pos = fields[which % len(fields)]
        out[pos:pos + 2] = struct.pack(">H", length % 2**16)
    elif raw.startswith(b"BM"):
        out[2:6] = struct.pack("<I", length % 2**32)  # the file size field
    return bytes(out)


def declare_size(raw: bytes, width: int, height: int) -> bytes:
    """Rewrite the image's declared width and height, pixels unchanged (PNG: with a valid IHDR CRC)."""
    out = bytearray(raw)
    if raw.startswith(PNG_SIGNATURE):
        pos = len(PNG_SIGNATURE)
        out[pos + 8:pos + 16] = struct.pack(">II", width, height)
        out[pos + 21:pos + 25] = struct.pack(">I", zlib.crc32(bytes(out[pos + 4:pos + 21])))
    elif raw.startswith(b"\xff\xd8"):
        sof = next((i for i in range(2, len(raw) - 9) if raw[i] == 0xFF and raw[i + 1] in (0xC0, 0xC1, 0xC2)), None)
        if sof is not None:
            out[sof + 5:sof + 9] = struct.pack(">HH", height % 2**16, width % 2**16)
    elif raw.startswith(b"BM"):
        out[18:26] = struct.pack("<ii", width, height)
    return bytes(out)


Mutation = Callable[[random.Random, bytes], tuple[str, bytes]]


def _truncation(rng: random.Random, raw: bytes) -> tuple[str, bytes]:
    cut = rng.randrange(1, len(raw))
    return f"truncated at {cut}", truncate(raw, cut)


def _header_flips(rng: random.Random, raw: bytes) -> tuple[str, bytes]:
    flips = [(rng.randrange(min(len(raw), 64)), rng.randrange(1, 256)) for _ in range(rng.randint(1, 3))]
    return f"header flips {flips}", flip(raw, flips)


def _random_flips(rng: random.Random, raw: bytes) -> tuple[str, bytes]:
    flips = [(rng.randrange(len(raw)), rng.randrange(1, 256)) for _ in range(rng.randint(1, 8))]
    return f"flips {flips}", flip(raw, flips)


def _length_lie(rng: random.Random, raw: bytes) -> tuple[str, bytes]:
    which, length = rng.randrange(16), rng.choice([0, 1, 13, 2**16 - 1, 2**31, 2**32 - 1, rng.randrange(2**32)])
    return f"length lie {which} -> {length}", lie_about_length(raw, which, length)


def _huge_size(rng: random.Random, raw: bytes) -> tuple[str, bytes]:
    w, h = rng.choice([(65535, 65535), (2**31 - 1, 1), (1, 4_000_000), (3000, 3000), (1, 1), (W * 50, H * 50)])
    return f"declares {w}x{h}", declare_size(raw, w, h)


MUTATIONS: dict[str, Mutation] = {"truncation": _truncation, "header flips": _header_flips,
                                  "random flips": _random_flips, "length lie": _length_lie, "huge size": _huge_size}


def mutated_corpus(count: int, seed: int = 11) -> list[tuple[str, bytes]]:
    """``count`` damaged files, the same every run: (description, file)."""
    rng = random.Random(seed)
    seeds = seed_files()
    names, kinds = sorted(seeds), sorted(MUTATIONS)
    out = []
    for i in range(count):
        name, kind = names[i % len(names)], kinds[(i // len(names)) % len(kinds)]
        what, raw = MUTATIONS[kind](rng, seeds[name][0])
        out.append((f"{name}: {what}", raw))
    return out


SERVER_PIXEL_LIMIT = 4_000_000  # UNET_LIMITS_MAX_IMAGE_PIXELS of the shared server (support/server.py)


def expected(raw: bytes) -> tuple[int, int] | str:
    """What the service's own decode path says in-process: the mask's (height, width) or an error code."""
    try:
        return prepare_bytes(raw, Preprocessing(image_size=(32, 32)), SERVER_PIXEL_LIMIT).size
    except ApiError as e:
        return e.code.value
