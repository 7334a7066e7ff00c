"""Command-line client: ``nailseg`` (or ``python -m nailseg.client``).

    nailseg segment photo.jpg --out masks/             # masks/photo.mask.png
    nailseg segment photos/ --out masks/ --overlay -j 4  # a folder, 4 at a time, with overlays
    nailseg segment photos/ --coco annotations.json    # pre-labels: a COCO instances file, a nail each
    nailseg tryon photos/ --color '#C8143C' --out tried/  # tried/<name>.tryon.png: nail polish on
    nailseg health
    nailseg model-info

``--url`` (default $NAILSEG_URL, else http://localhost:8001) and ``--api-key`` (default
$NAILSEG_API_KEY, sent as X-API-Key) apply to every command. Exit status: 0 when everything
worked, 1 when a photo or the call failed, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx

from nailseg.api.routes import PREFIX
from nailseg.client import coco

DEFAULT_URL = "http://localhost:8001"
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
MIME = {".png": "image/png", ".bmp": "image/bmp"}


@dataclass
class Failure:
    photo: Path
    code: str
    message: str


def photos_in(target: Path) -> list[Path]:
    if target.is_dir():
        return sorted(p for p in target.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    return [target]


def _error_of(resp: httpx.Response) -> tuple[str, str]:
    try:
        error = resp.json()["error"]
        return error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP_{resp.status_code}", resp.text[:200]


def _photo_part(photo: Path) -> dict:
    return {"image": (photo.name, photo.read_bytes(), MIME.get(photo.suffix.lower(), "image/jpeg"))}


def _post(client: httpx.Client, endpoint: str, photo: Path, data: dict) -> httpx.Response:
    """A multipart POST of one photo with form fields; raises RuntimeError(code, message) on an error answer."""
    resp = client.post(f"{PREFIX}/{endpoint}", files=_photo_part(photo),
                       data={k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in data.items()
                             if v is not None})
    if resp.status_code != 200:
        raise RuntimeError(*_error_of(resp))
    return resp


def mask_png(client: httpx.Client, photo: Path, threshold: float | None, overlay: bool) -> bytes:
    """The /mask answer for one photo."""
    return _post(client, "mask", photo, {"overlay": overlay, "threshold": threshold}).content


class Progress:
    """A one-line progress bar on stderr (only where stderr is a terminal, or when forced)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled and total > 1
        self._lock = threading.Lock()

    def step(self, failed: bool = False) -> None:
        with self._lock:
            self.done += 1
            if self.enabled:
                filled = int(30 * self.done / self.total)
                sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}")
                if self.done == self.total:
                    sys.stderr.write("\n")
                sys.stderr.flush()


def each_photo(args: argparse.Namespace, work, done: str) -> int:
    """``work(photo)`` for every photo of ``args.target``, ``args.concurrency`` at a time, with a progress
    bar; then a summary line and each failed photo's error. Exit status 1 if any failed."""
    photos = photos_in(args.target)
    if not photos:
        print(f"no photos ({', '.join(sorted(PHOTO_SUFFIXES))}) in {args.target}", file=sys.stderr)
        return 1
    progress = Progress(len(photos), args.progress or sys.stderr.isatty())
    failures: list[Failure] = []

    def one(photo: Path) -> None:
        try:
            work(photo)
        except RuntimeError as e:
            failures.append(Failure(photo, *e.args))
        except (OSError, httpx.HTTPError) as e:
            failures.append(Failure(photo, type(e).__name__, str(e)))
        progress.step()

    with concurrent.futures.ThreadPoolExecutor(max(1, args.concurrency)) as pool:
        list(pool.map(one, photos))
    print(f"{len(photos) - len(failures)} of {len(photos)} photos {done}")
    for f in sorted(failures, key=lambda f: f.photo):
        print(f"  {f.photo}: {f.code}: {f.message}", file=sys.stderr)
    return 1 if failures else 0


def segment(client: httpx.Client, args: argparse.Namespace) -> int:
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    base = args.target if args.target.is_dir() else args.target.parent
    labels = coco.CocoFile(f"nail pre-labels from {args.url}")

    def one(photo: Path) -> None:
        if args.coco is not None:
            answer = _post(client, "segment-image", photo, {"threshold": args.threshold, "return_nails": True}).json()
            labels.photos.append(coco.from_answer(photo.relative_to(base).as_posix(), answer))
            if args.out is not None:
                (args.out / f"{photo.stem}.mask.png").write_bytes(coco.mask_png(answer))
        elif args.out is not None:
            (args.out / f"{photo.stem}.mask.png").write_bytes(mask_png(client, photo, args.threshold, False))
        if args.overlay:
            (args.out / f"{photo.stem}.overlay.png").write_bytes(mask_png(client, photo, args.threshold, True))

    where = " and ".join(str(p) for p in (args.out, args.coco) if p is not None)
    status = each_photo(args, one, f"segmented into {where}")
    if args.coco is not None:
        coco.write(args.coco, labels)
        print(f"{args.coco}: {len(labels.photos)} images, COCO instances (category nail)")
    return status


def tryon(client: httpx.Client, args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    options = {"color": args.color, "opacity": args.opacity, "finish": args.finish, "threshold": args.threshold,
               "output_format": args.format}
    suffix = "jpg" if args.format == "jpeg" else "png"

    def one(photo: Path) -> None:
        (args.out / f"{photo.stem}.tryon.{suffix}").write_bytes(_post(client, "tryon", photo, options).content)

    return each_photo(args, one, f"tried on into {args.out}")


def show(client: httpx.Client, path: str) -> int:
    resp = client.get(PREFIX + path)
    try:
        print(json.dumps(resp.json(), indent=2))
    except ValueError:
        print(resp.text)
    return 0 if resp.status_code == 200 else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nailseg", description="Client of the nail segmentation service.")
    p.add_argument("--url", default=os.environ.get("NAILSEG_URL", DEFAULT_URL),
                   help="service address (env NAILSEG_URL; default %(default)s)")
    p.add_argument("--api-key", default=os.environ.get("NAILSEG_API_KEY"),
                   help="sent as X-API-Key (env NAILSEG_API_KEY)")
    p.add_argument("--timeout", type=float, default=120, help="seconds per request (default %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("segment", help="write the mask (and overlay) PNG of a photo or of each photo in a folder, "
                       "or a COCO file of their nails")
    s.add_argument("target", type=Path, metavar="PHOTO|FOLDER")
    s.add_argument("--out", type=Path, help="folder for <name>.mask.png (and <name>.overlay.png)")
    s.add_argument("--coco", type=Path, metavar="FILE.json", help="write a COCO instances file: each photo's "
                   "size, one annotation per nail (RLE, bbox, area, score), category nail")
    s.add_argument("--overlay", action="store_true", help="also write the photo with the mask over it (with --out)")
    t = sub.add_parser("tryon", help="write each photo with nail polish on it")
    t.add_argument("target", type=Path, metavar="PHOTO|FOLDER")
    t.add_argument("--color", required=True, help="the polish colour, #RRGGBB")
    t.add_argument("--out", type=Path, required=True, help="folder for <name>.tryon.png (.jpg with --format jpeg)")
    t.add_argument("--opacity", type=float, help="0..1 (default: the server's)")
    t.add_argument("--finish", choices=["gloss", "matte"], help="default: the server's (gloss)")
    t.add_argument("--format", choices=["png", "jpeg"], default="png", help="default %(default)s")
    for each in (s, t):
        each.add_argument("--threshold", type=float, help="mask cut-off 0..1 (default: the server's)")
        each.add_argument("-j", "--concurrency", type=int, default=4, help="photos in flight (default %(default)s)")
        each.add_argument("--progress", action="store_true", help="show the progress bar even when not on a "
                          "terminal")
    sub.add_parser("health", help="the service's health report")
    sub.add_parser("model-info", help="the served model")
    return p


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if getattr(args, "threshold", None) is not None and not 0 <= args.threshold <= 1:
        cli.error("--threshold must be between 0 and 1")
    if args.command == "segment" and args.out is None and args.coco is None:
        cli.error("segment needs --out FOLDER, --coco FILE.json or both")
    if args.command == "segment" and args.overlay and args.out is None:
        cli.error("--overlay needs --out FOLDER")
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    commands = {"segment": segment, "tryon": tryon}
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=args.timeout) as client:
            if args.command in commands:
                return commands[args.command](client, args)
            return show(client, "/health" if args.command == "health" else "/model-info")
    except httpx.HTTPError as e:
        print(f"error: cannot reach {args.url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
