"""The benchmark's photos: real ones from the shared test split (else examples/), at the sizes clients send."""

from __future__ import annotations

from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "nails-roboflow"
SIZES = [(432, 432), (640, 480), (1024, 768), (1280, 960)]  # (w, h): what phones and web uploads send


def load_photos(n: int) -> list[bytes]:
    """n real photos as JPEG bytes, resized round-robin to mixed sizes."""
    if (DATA / "splits" / "test.txt").exists():
        stems = (DATA / "splits" / "test.txt").read_text().split()[:n]
        paths = [DATA / "images" / f"{s}.jpg" for s in stems]
    else:
        paths = sorted((ROOT / "examples").glob("*.jpg"))
    out = []
    for i in range(n):
        img = cv2.imread(str(paths[i % len(paths)]))
        img = cv2.resize(img, SIZES[i % len(SIZES)], interpolation=cv2.INTER_CUBIC)
        out.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    return out
