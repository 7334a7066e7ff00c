"""Fingerprints of a running server's answers, to prove a change left them byte-identical.

    python -m bench.answers --url http://localhost:8001 --out before.json
    (change the code, restart the server)
    python -m bench.answers --url http://localhost:8001 --out after.json --compare before.json

For each photo (examples/ and the shared test split) it sends the guide's requests with every option
(`/segment` with each mask format, confidences, contours and pictures; `/mask`, with and without the
overlay; `/segment-batch`) and keeps the sha256 of each answer's body, with the fields that change per
request (`request_id`, `processing_time_ms`, `total_processing_time_ms`) taken out.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import json
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "nails-roboflow"
VOLATILE = {"request_id", "processing_time_ms", "total_processing_time_ms"}
SEGMENT_OPTIONS = [
    {"return_confidence": True, "return_contours": True, "return_visualizations": True},
    {"mask_format": "coco_rle"},
    {"mask_format": "polygons", "threshold": 0.3},
]


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _digest(resp: httpx.Response) -> str:
    if resp.headers.get("content-type", "").startswith("application/json"):
        body = json.dumps(_stable(resp.json()), sort_keys=True).encode()
    else:
        body = resp.content
    return f"{resp.status_code} {hashlib.sha256(body).hexdigest()}"


def photos(test_split: bool) -> list[Path]:
    found = sorted((ROOT / "examples").glob("*.jpg"))
    if test_split:
        stems = (DATA / "splits" / "test.txt").read_text().split()
        found += [DATA / "images" / f"{s}.jpg" for s in stems]
    return found


def fingerprint(client: httpx.Client, path: Path) -> dict[str, str]:
    data = path.read_bytes()
    b64 = base64.b64encode(data).decode()
    out = {}
    for i, options in enumerate(SEGMENT_OPTIONS):
        out[f"segment{i}"] = _digest(client.post("/api/unet/segment", json={"image_data": b64, **options}))
    for overlay in (False, True):
        out[f"mask{int(overlay)}"] = _digest(client.post(
            "/api/unet/mask", files={"image": (path.name, data, "image/jpeg")}, data={"overlay": str(overlay).lower()}))
    out["batch"] = _digest(client.post("/api/unet/segment-batch", json={
        "images": [{"image_data": b64}, {"image_data": "not base64"}], "return_contours": True}))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://localhost:8001")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--compare", type=Path, help="an earlier --out file: print what differs, exit 1 if anything")
    p.add_argument("--examples-only", action="store_true", help="skip the shared test split")
    args = p.parse_args(argv)
    files = photos(not args.examples_only)
    with httpx.Client(base_url=args.url, timeout=120) as client, concurrent.futures.ThreadPoolExecutor(4) as pool:
        prints = dict(zip((f.name for f in files), pool.map(lambda f: fingerprint(client, f), files)))
    args.out.write_text(json.dumps(prints, indent=1, sort_keys=True))
    answers = sum(len(v) for v in prints.values())
    print(f"{len(files)} photos, {answers} answers -> {args.out}")
    if args.compare:
        before = json.loads(args.compare.read_text())
        differ = [(name, key) for name, v in prints.items() for key, d in v.items()
                  if before.get(name, {}).get(key) != d]
        missing = sorted(set(before) - set(prints))
        print(f"compared with {args.compare}: {answers - len(differ)} of {answers} identical, "
              f"{len(differ)} differ, {len(missing)} photos missing")
        for name, key in differ[:20]:
            print(f"  differs: {name} {key}")
        return 1 if differ or missing else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
