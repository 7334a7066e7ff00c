"""A PNG grid of test photos with the model's masks tinted over them: typical and worst cases.

    python -m training.gallery --checkpoint FILE --data DIR --split test --out docs/failure_cases.png

Each tile: the photo with the prediction (magenta) and the label's outline (green), and its Dice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from nailseg.config import load_settings
from nailseg.images.postprocess import overlay
from training.data import read_mask, read_rgb, read_split
from training.evaluate import engine_for, predict_mask, score

TILE = 216


def tile(rgb: np.ndarray, pred: np.ndarray, true: np.ndarray, caption: str) -> np.ndarray:
    img = overlay(rgb, pred)
    outline, _ = cv2.findContours(true.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(img, outline, -1, (0, 255, 0), 2)
    img = cv2.resize(img, (TILE, TILE), interpolation=cv2.INTER_AREA)
    cv2.rectangle(img, (0, 0), (TILE, 18), (0, 0, 0), -1)
    cv2.putText(img, caption, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--worst", type=int, default=8)
    p.add_argument("--typical", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path("docs/failure_cases.png"))
    args = p.parse_args(argv)
    settings = load_settings()
    engine = engine_for(args.checkpoint, settings)
    rows = []
    for sample in read_split(args.data, args.split):
        pred = predict_mask(engine, sample.image_path.read_bytes(), settings.inference.threshold, 10**8) > 0
        true = read_mask(sample.mask_path) > 0
        rows.append((score([(pred, true)]).mean_dice, sample, pred, true))
    rows.sort(key=lambda r: r[0])
    typical = rows[len(rows) // 2 - args.typical // 2:][:args.typical]
    picked = [("worst", r) for r in rows[:args.worst]] + [("median", r) for r in typical]
    tiles = [tile(read_rgb(s.image_path), pr, tr, f"{kind} dice {d:.2f} {s.stem[:18]}")
             for kind, (d, s, pr, tr) in picked]
    cols = 4
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.vstack([np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}: {len(picked)} tiles ({args.worst} worst, {len(typical)} median)")


if __name__ == "__main__":
    main()
