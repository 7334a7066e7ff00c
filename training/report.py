"""Every number the model card gives, for one or more checkpoints measured in one run, through the service's
own decode, resize, engine and mask code:

    python -m training.report --data ../shared/data/nails-roboflow --nail-free tests/data/nail_free \
        --checkpoint OLD.pth --checkpoint NEW.pth --json bench/results/DATE-model.json

- pooled Dice on valid and test at thresholds 0.4 / 0.5 / 0.6;
- by nail size: the share of labelled nails found (half of a nail's pixels marked), per nail area, and the
  pooled Dice of the photos whose nails are small (wide shots), mid-sized or large;
- the data set's photos with empty masks that stay empty, and the share of nail-free photos with more than
  0.1% of their pixels marked (per kind, from the SOURCES.md table beside them);
- calibration: the expected calibration error of the pixel probabilities on test (10 bins).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from nailseg.config import load_settings
from nailseg.images import pipeline, postprocess
from training.data import read_mask, read_split
from training.evaluate import engine_for
from training.negatives import FALSE_NAIL_SHARE

THRESHOLDS = (0.4, 0.5, 0.6)
# nail area as a share of the photo: below SMALL a nail is small (a wide shot), above LARGE large (a close-up)
SMALL, LARGE = 0.002, 0.01


def probability(engine, raw: bytes, max_pixels: int) -> np.ndarray:
    prepared = pipeline.prepare_bytes(raw, engine.prep, max_pixels)
    return postprocess.probability_at(engine.infer(prepared.model_input[None])[0], *prepared.size)


def size_bucket(share: float) -> str:
    return "small" if share < SMALL else "large" if share > LARGE else "mid"


def split_report(engine, data: Path, split: str, max_pixels: int) -> dict:
    counts = {t: np.zeros(3, np.int64) for t in THRESHOLDS}  # tp, fp, fn
    by_photo = {b: np.zeros(3, np.int64) for b in ("small", "mid", "large")}
    nails = {b: [0, 0] for b in ("small", "mid", "large")}  # found, all
    empty = [0, 0]  # stayed empty, all
    bins = np.zeros((10, 2))  # per probability bin: sum of labels, count
    prob_sum = np.zeros(10)
    for sample in read_split(data, split):
        prob = probability(engine, sample.image_path.read_bytes(), max_pixels)
        true = read_mask(sample.mask_path) > 0
        for t in THRESHOLDS:
            pred = prob >= t
            counts[t] += [(pred & true).sum(), (pred & ~true).sum(), (~pred & true).sum()]
        pred = prob >= 0.5
        if not true.any():
            empty[1] += 1
            empty[0] += int(pred.mean() <= FALSE_NAIL_SHARE)
            continue
        n, labels, stats, _ = cv2.connectedComponentsWithStats(true.astype(np.uint8), connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA] / true.size
        for k, share in enumerate(areas, start=1):
            nail = labels == k
            bucket = nails[size_bucket(share)]
            bucket[1] += 1
            bucket[0] += int(pred[nail].mean() >= 0.5)
        by_photo[size_bucket(float(np.median(areas)))] += [(pred & true).sum(), (pred & ~true).sum(),
                                                           (~pred & true).sum()]
        idx = np.minimum((prob * 10).astype(np.int64), 9).ravel()
        bins[:, 0] += np.bincount(idx, weights=true.ravel(), minlength=10)
        bins[:, 1] += np.bincount(idx, minlength=10)
        prob_sum += np.bincount(idx, weights=prob.ravel(), minlength=10)

    def dice(c: np.ndarray) -> float:
        return float(2 * c[0] / max(2 * c[0] + c[1] + c[2], 1))

    seen = bins[:, 1] > 0
    ece = float(np.sum(np.abs(prob_sum[seen] - bins[seen, 0])) / bins[:, 1].sum())
    return {
        "pooled_dice": {str(t): round(dice(c), 4) for t, c in counts.items()},
        "precision_0.5": round(float(counts[0.5][0] / max(counts[0.5][0] + counts[0.5][1], 1)), 4),
        "recall_0.5": round(float(counts[0.5][0] / max(counts[0.5][0] + counts[0.5][2], 1)), 4),
        "dice_by_photo_nail_size": {b: {"photos_dice": round(dice(c), 4)} for b, c in by_photo.items()},
        "nails_found_by_size": {b: {"found": f, "nails": a, "share": round(f / max(a, 1), 4)}
                                for b, (f, a) in nails.items()},
        "empty_masks_stay_empty": {"stayed": empty[0], "photos": empty[1]},
        "calibration_ece": round(ece, 4),
    }


def kinds(folder: Path) -> dict[str, str]:
    """file name -> kind, from the SOURCES.md table beside the photos (a column named 'kind')."""
    table = folder / "SOURCES.md"
    if not table.exists():
        return {}
    rows = [[c.strip().strip("`") for c in line.strip().strip("|").split("|")]
            for line in table.read_text().splitlines() if line.startswith("|")]
    if not rows or "kind" not in rows[0]:
        return {}
    file_col, kind_col = 0, rows[0].index("kind")
    return {r[file_col]: r[kind_col] for r in rows[2:] if len(r) > kind_col}


def nail_free_report(engine, folder: Path, max_pixels: int) -> dict:
    kind_of = kinds(folder)
    per_kind: dict[str, list[int]] = {}
    marked_photos, shares = [], []
    for path in sorted(p for p in folder.iterdir() if re.search(r"\.(jpe?g|png)$", p.name, re.I)):
        share = float((probability(engine, path.read_bytes(), max_pixels) >= 0.5).mean())
        shares.append(share)
        kind = per_kind.setdefault(kind_of.get(path.name, "other"), [0, 0])
        kind[1] += 1
        if share > FALSE_NAIL_SHARE:
            kind[0] += 1
            marked_photos.append(f"{path.name} ({share:.2%})")
    n = len(shares)
    return {"photos": n, "marked_over_0.1%": len(marked_photos),
            "rate": round(len(marked_photos) / max(n, 1), 4),
            "mean_marked_share": round(float(np.mean(shares)) if shares else 0.0, 5),
            "by_kind": {k: {"marked": m, "photos": t} for k, (m, t) in sorted(per_kind.items())},
            "marked": marked_photos}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, action="append", required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--nail-free", type=Path, action="append", default=[], help="a folder of nail-free photos")
    p.add_argument("--splits", default="valid,test")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "int8"])
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    settings = load_settings(environ={}).with_inference(precision=args.precision)
    max_pixels = settings.limits.max_image_pixels
    out = {}
    for ckpt in args.checkpoint:
        t0 = time.perf_counter()
        engine = engine_for(ckpt, settings)
        result = {"engine": f"{engine.device} {engine.mode}",
                  **{s: split_report(engine, args.data, s, max_pixels) for s in args.splits.split(",")},
                  **{f"nail_free:{f}": nail_free_report(engine, f, max_pixels) for f in args.nail_free}}
        result["seconds"] = round(time.perf_counter() - t0, 1)
        out[str(ckpt)] = result
        print(json.dumps({str(ckpt): result}, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
