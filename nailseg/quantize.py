"""int8 for the OpenVINO backend: post-training quantization with NNCF, done once at import time.

``precision: int8`` is opt-in. On the 2-core AVX512-BF16 development machine it ran the bundled model
about 1.6x faster than OpenVINO bf16 with the same Dice on the validation split (bench/run.py and
MODEL_CARD.md give the numbers), but its masks differ from fp32 more than the other paths' do
(pooled IoU ~0.97 instead of >= 0.99), so ``auto`` does not pick it.

Calibration needs a few nail photos; the four in ``examples/`` with their flips were as good as 300
training photos (Dice within 0.1 point). They go through the service's own decode and resize.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

from nailseg import pipeline
from nailseg.backends import INT8_XML, convert_to_openvino
from nailseg.model import AttentionUNet
from nailseg.preprocess import Preprocessing, to_tensor


DEFAULT_CALIBRATION = Path(__file__).resolve().parents[1] / "examples"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def nncf_available() -> bool:
    return importlib.util.find_spec("nncf") is not None


def calibration_inputs(photo_dir: Path, prep: Preprocessing) -> list[np.ndarray]:
    """Each photo in ``photo_dir`` (and its three flips) as a (1, 3, H, W) float32 model input."""
    photos = sorted(p for p in photo_dir.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise ValueError(f"{photo_dir}: no photos (.jpg, .png, .webp) to calibrate int8 with")
    inputs = []
    for photo in photos:
        rgb = pipeline.prepare_bytes(photo.read_bytes(), prep, 10**8).model_input
        for flipped in (rgb, rgb[:, ::-1], rgb[::-1], rgb[::-1, ::-1]):
            inputs.append(to_tensor(np.ascontiguousarray(flipped)[None], prep).numpy())
    return inputs


def export_int8(model: AttentionUNet, prep: Preprocessing, photo_dir: Path, out_dir: Path) -> Path:
    """Quantize the model (weights and activations) and write it as ``out_dir/model_int8.xml``."""
    import nncf
    import openvino as ov

    inputs = calibration_inputs(photo_dir, prep)
    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars: stdout is for the import's result
        quantized = nncf.quantize(convert_to_openvino(model, prep.image_size), nncf.Dataset(inputs),
                                  subset_size=len(inputs), fast_bias_correction=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, out_dir / INT8_XML, compress_to_fp16=False)
    return out_dir / INT8_XML
