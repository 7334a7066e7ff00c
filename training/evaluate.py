"""Evaluate a checkpoint on a data split through the service's own image and mask code.

    python -m training.evaluate --checkpoint FILE --data ../shared/data/nails-roboflow --split test
    python -m training.evaluate --url http://127.0.0.1:8001 --data ../shared/data/nails-roboflow --split test

Each photo goes the way a request goes: file bytes -> decode -> resize -> engine (same device,
precision and buffers as the runner) -> probability at the photo's size -> threshold. With ``--url``
each photo goes to a running server instead (``POST /api/unet/mask``, 4 at a time), so what is scored
is what clients get. The mask is compared with the label mask at the photo's own resolution.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import tempfile
from pathlib import Path

import cv2
import httpx
import numpy as np
from pydantic import BaseModel

from nailseg.client.cli import mask_png
from nailseg.config import Settings, load_settings
from nailseg.images import pipeline
from nailseg.inference.backends import export_openvino
from nailseg.inference.engine import InferenceEngine
from nailseg.inference.hardware import resolve_device
from nailseg.inference.build import engine_from_settings
from nailseg.model.checkpoint import CheckpointError, read_checkpoint
from nailseg.store.importer import preprocessing_for
from nailseg.store.quantize import (
    DEFAULT_CALIBRATION,
    export_gated_int8,
    nncf_available,
)
from training.data import read_mask, read_split


class Scores(BaseModel):
    images: int
    pooled_dice: float
    pooled_iou: float
    precision: float
    recall: float
    mean_dice: float  # per image, then averaged (an image with no nail and no prediction scores 1)
    mean_iou: float


def engine_for(checkpoint: Path, settings: Settings) -> InferenceEngine:
    """The runner's engine for a checkpoint file; where int8 may be served (forced, or ``auto`` on a CPU, where
    the start-up trial decides) it quantizes and gates as the import does."""
    ckpt = read_checkpoint(checkpoint, fallback_variant=settings.model.model_variant)
    prep, _ = preprocessing_for(ckpt, settings)
    model = ckpt.build_model()
    precision = settings.inference.precision
    on_cpu = resolve_device(settings.model.device, settings.model.fallback_to_cpu) == "cpu"
    if not (nncf_available() and (precision == "int8" or (precision == "auto" and on_cpu))):
        return engine_from_settings(model, prep, settings)
    with tempfile.TemporaryDirectory(prefix="nailseg-int8-") as ir_dir:  # compiled at once, then not read again
        gate = export_gated_int8(model, prep, DEFAULT_CALIBRATION, Path(ir_dir))
        export_openvino(model, prep.image_size, Path(ir_dir))  # the fp32 IR beside it, as in a store entry
        return engine_from_settings(model, prep, settings, Path(ir_dir), gate)


def predict_mask(engine: InferenceEngine, raw: bytes, threshold: float, max_pixels: int) -> np.ndarray:
    """The service's mask for these image bytes (uint8 0/255 at the image's size)."""
    prepared = pipeline.prepare_bytes(raw, engine.prep, max_pixels)
    prob = engine.infer(prepared.model_input[None])[0]
    return pipeline.mask_for(prepared, prob, threshold)[1]


def score(pairs: list[tuple[np.ndarray, np.ndarray]]) -> Scores:
    """Dice/IoU/precision/recall from (predicted, true) boolean masks."""
    tp = fp = fn = 0
    dices, ious = [], []
    for pred, true in pairs:
        i_tp = int((pred & true).sum())
        i_fp = int((pred & ~true).sum())
        i_fn = int((~pred & true).sum())
        tp, fp, fn = tp + i_tp, fp + i_fp, fn + i_fn
        denom = 2 * i_tp + i_fp + i_fn
        dices.append(2 * i_tp / denom if denom else 1.0)
        ious.append(i_tp / (i_tp + i_fp + i_fn) if denom else 1.0)
    return Scores(
        images=len(pairs),
        pooled_dice=2 * tp / max(2 * tp + fp + fn, 1),
        pooled_iou=tp / max(tp + fp + fn, 1),
        precision=tp / max(tp + fp, 1),
        recall=tp / max(tp + fn, 1),
        mean_dice=float(np.mean(dices)) if dices else 0.0,
        mean_iou=float(np.mean(ious)) if ious else 0.0,
    )


def evaluate(engine: InferenceEngine, data: Path, split: str, threshold: float, max_pixels: int,
             limit: int | None = None) -> Scores:
    return _score_split(lambda path: predict_mask(engine, path.read_bytes(), threshold, max_pixels), data, split,
                        limit)


def evaluate_served(url: str, data: Path, split: str, threshold: float | None, limit: int | None = None) -> Scores:
    """The same scores for the masks a running server answers (``threshold`` None: the server's own)."""
    with httpx.Client(base_url=url, timeout=120) as client:
        def served(path: Path) -> np.ndarray:
            png = mask_png(client, path, threshold, overlay=False)
            return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)

        return _score_split(served, data, split, limit, workers=4)


def _score_split(predict, data: Path, split: str, limit: int | None, workers: int = 1) -> Scores:
    samples = read_split(data, split)[:limit]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        preds = pool.map(lambda sample: predict(sample.image_path) > 0, samples)
        return score([(pred, read_mask(sample.mask_path) > 0) for pred, sample in zip(preds, samples)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="evaluate this checkpoint in-process")
    source.add_argument("--url", help="evaluate what the server at this URL answers (its own model and precision)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--threshold", type=float, help="default: config.yaml's inference.threshold")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"],
                   help="default: config.yaml's inference.precision")
    p.add_argument("--test-time-flip", action=argparse.BooleanOptionalAction,
                   help="also segment each photo's mirror image and average (default: config.yaml)")
    p.add_argument("--json", type=Path, help="also write the scores here")
    args = p.parse_args(argv)
    settings = load_settings()
    if args.precision:
        settings = settings.with_inference(precision=args.precision)
    if args.test_time_flip is not None:
        settings = settings.with_inference(test_time_flip=args.test_time_flip)
    threshold = settings.inference.threshold if args.threshold is None else args.threshold
    if args.url:  # the server's own model, precision and (unless --threshold is given) threshold
        if args.precision or args.test_time_flip is not None:
            p.error("--precision and --test-time-flip apply to --checkpoint; with --url the server decides")
        try:
            scores = evaluate_served(args.url, args.data, args.split, args.threshold, args.limit)
        except (httpx.HTTPError, RuntimeError) as e:  # unreachable, or an error answer (code, message)
            print(f"error: {args.url}: {' '.join(map(str, e.args)) or type(e).__name__}", file=sys.stderr)
            return 1
        cut = "the server's" if args.threshold is None else args.threshold
        return _report(scores, f"{args.url} on {args.split} ({scores.images} images, threshold {cut})", args,
                       args.threshold, None)
    try:
        engine = engine_for(args.checkpoint, settings)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    scores = evaluate(engine, args.data, args.split, threshold, settings.limits.max_image_pixels, args.limit)
    return _report(scores, f"{args.checkpoint} on {args.split} ({scores.images} images, threshold {threshold}, "
                   f"{engine.device} {engine.mode})", args, threshold, engine.test_time_flip)


def _report(scores: Scores, title: str, args: argparse.Namespace, threshold: float | None, flip: bool | None) -> int:
    print(f"{title}:")
    for name, value in scores.model_dump().items():
        if name != "images":
            print(f"  {name:12s} {value:.4f}")
    if args.json:
        args.json.write_text(json.dumps({"split": args.split, "threshold": threshold, "test_time_flip": flip,
                                          **scores.model_dump()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
