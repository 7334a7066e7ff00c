"""Check a running deployment of the service: ready, segments a labelled photo well, describes its model.

    python deploy/smoke_check.py http://127.0.0.1:8001 [--photo examples/nails_01.jpg] [--min-dice 0.85]

Waits for /readyz, segments the photo through /api/unet/segment, compares the mask with the photo's
label (`<photo stem>.mask.png`, Dice), reads /api/unet/model-info. Prints one JSON line and exits 0
when every check passes, 1 otherwise. Standard library, numpy and Pillow only, so it runs wherever the
service's own requirements are installed (used by deploy/container_test.sh and the split-process test).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

PREFIX = "/api/unet"


def wait_ready(base: str, timeout_s: float) -> float:
    """Seconds until GET /readyz answers 200 (raises TimeoutError after timeout_s)."""
    started = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as resp:
                if resp.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{base}/readyz not 200 after {timeout_s:.0f} s")
        time.sleep(1)


def call(base: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}{path}", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.load(resp)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def check(base: str, photo: Path, min_dice: float, timeout_s: float) -> dict:
    ready_s = wait_ready(base, timeout_s)
    answer = call(base, f"{PREFIX}/segment", {"image_data": base64.b64encode(photo.read_bytes()).decode()})
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask_data"]))))
    label = np.asarray(Image.open(photo.with_name(photo.stem + ".mask.png")).convert("L"))
    info = call(base, f"{PREFIX}/model-info")
    report = {"url": base, "ready_after_s": round(ready_s, 1), "photo": photo.name,
              "mask_shape": list(mask.shape), "dice": round(dice(mask, label), 4),
              "model_tag": info.get("model_tag"), "device": info.get("device"), "precision": info.get("precision")}
    problems = []
    if not answer.get("success") or mask.shape != label.shape:
        problems.append(f"mask {mask.shape} for a {label.shape} photo")
    elif report["dice"] < min_dice:
        problems.append(f"Dice {report['dice']} < {min_dice}")
    if not str(info.get("model_tag", "")).startswith("unet:"):
        problems.append(f"/model-info has no unet model tag: {info}")
    report["problems"] = problems
    return report


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the API's base URL, e.g. http://127.0.0.1:8001")
    parser.add_argument("--photo", type=Path, default=root / "examples" / "nails_01.jpg")
    parser.add_argument("--min-dice", type=float, default=0.85)
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for /readyz")
    args = parser.parse_args(argv)
    try:
        report = check(args.url.rstrip("/"), args.photo, args.min_dice, args.timeout)
    except (OSError, TimeoutError, ValueError, KeyError) as e:  # URLError and HTTPError are OSErrors
        report = {"url": args.url, "problems": [f"{type(e).__name__}: {e}"]}
    print(json.dumps(report))
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
