"""int8 for the OpenVINO backend: post-training quantization with NNCF, done once at import time, and its gate.

int8 runs the bundled model ~1.6-1.8x faster than OpenVINO fp32/bf16 with the same Dice (bench/run.py,
MODEL_CARD.md), but a model can quantize badly (activations spanning huge ranges lose their small
values). So the import checks every int8 model against its fp32 model on the calibration photos and
their flips (``gate``): the masks must agree (pooled IoU >= ``GATE_MIN_IOU``) and the probabilities must
stay close (mean |p_int8 - p_fp32| <= ``GATE_MAX_PROB_DIFF``). A model that passes is written as
``model_int8.xml``, which ``precision: auto`` serves where the serving CPU itself shows, at start-up, that
it agrees with fp32 on the same photos and is faster (``inference.trial``; the photos are kept with the
model as ``gate_photos.npy``); one that fails is kept only as ``model_int8_failed.xml``, served only when
``precision: int8`` is forced (with a warning). The bundled model measured IoU 0.981 and mean |dp| 0.0016
(see MODEL_CARD.md).

Calibration needs a few nail photos; the four in ``examples/`` with their flips were as good as 300
training photos (Dice within 0.1 point). Users should calibrate on their own photos
(``python -m models_import --calibration-images DIR``): the gate checks on the same photos, so they
should look like what the service will see. They go through the service's own decode and resize.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

from nailseg.images import pipeline
from nailseg.inference.agreement import agreement, gate_views
from nailseg.inference.backends import convert_to_openvino
from nailseg.inference.ir import GATE_PHOTOS, INT8_FAILED_XML, INT8_XML
from nailseg.inference.normalize import to_tensor
from nailseg.model.spec import (
    GATE_MAX_PROB_DIFF,
    GATE_MIN_IOU,
    GATE_THRESHOLD,
    Int8Gate,
    Preprocessing,
)
from nailseg.model.unet import AttentionUNet

DEFAULT_CALIBRATION = Path(__file__).resolve().parents[2] / "examples"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def nncf_available() -> bool:
    return importlib.util.find_spec("nncf") is not None


def calibration_photos(photo_dir: Path) -> list[Path]:
    """The photos in ``photo_dir``; label masks next to them (``*.mask.png``, as in examples/) are not photos."""
    return sorted(p for p in photo_dir.iterdir()
                  if p.suffix.lower() in PHOTO_SUFFIXES and not p.name.lower().endswith(".mask.png"))


def gate_photos(photo_dir: Path, prep: Preprocessing) -> np.ndarray:
    """The photos in ``photo_dir`` as the service sees them: (N, H, W, 3) uint8 at the model's size."""
    photos = calibration_photos(photo_dir)
    if not photos:
        raise ValueError(f"{photo_dir}: no photos (.jpg, .png, .webp) to calibrate int8 with")
    return np.stack([pipeline.prepare_bytes(photo.read_bytes(), prep, 10**8).model_input for photo in photos])


def calibration_inputs(photo_dir: Path, prep: Preprocessing) -> list[np.ndarray]:
    """Each photo in ``photo_dir`` (and its three flips) as a (1, 3, H, W) float32 model input."""
    return _inputs(gate_photos(photo_dir, prep), prep)


def _inputs(photos: np.ndarray, prep: Preprocessing) -> list[np.ndarray]:
    return [to_tensor(view[None], prep).numpy() for view in gate_views(photos)]


def _quantize(fp32_model, inputs: list[np.ndarray]):
    import nncf

    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars: stdout is for the import's result
        return nncf.quantize(fp32_model, nncf.Dataset(inputs), subset_size=len(inputs), fast_bias_correction=True)


def export_gated_int8(model: AttentionUNet, prep: Preprocessing, photo_dir: Path, out_dir: Path) -> Int8Gate:
    """Quantize, check the int8 model against fp32 on the calibration inputs, and write it as
    ``model_int8.xml`` if it passed, else as ``model_int8_failed.xml``."""
    photos = gate_photos(photo_dir, prep)
    inputs = _inputs(photos, prep)
    fp32_model = convert_to_openvino(model, prep.image_size)
    reference = probabilities(fp32_model, inputs)  # before quantizing: NNCF may change the model it is given
    quantized = _quantize(fp32_model, inputs)
    result = gate(reference, probabilities(quantized, inputs), photo_dir.name)  # the name only: no paths in /model-info
    _save(quantized, out_dir / (INT8_XML if result.passed else INT8_FAILED_XML))
    np.save(out_dir / GATE_PHOTOS, photos)  # the runner checks the int8 model on them again, on its own CPU
    return result


def probabilities(ov_model, inputs: list[np.ndarray]) -> np.ndarray:
    """The model's probabilities for ``inputs``, in f32 arithmetic whatever the CPU (so the gate measures
    the quantization alone, not bf16)."""
    import openvino as ov

    compiled = ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    logits = np.concatenate([compiled(x)[0] for x in inputs]).astype(np.float64)
    return 1 / (1 + np.exp(-logits))


def gate(fp32: np.ndarray, int8: np.ndarray, calibration_images: str) -> Int8Gate:
    """Do the int8 probabilities agree with fp32's? Pooled mask IoU and mean absolute difference."""
    a = agreement(fp32, int8, GATE_THRESHOLD)
    return Int8Gate(passed=a.passes(GATE_MIN_IOU, GATE_MAX_PROB_DIFF), mask_iou=a.mask_iou,
                    mean_abs_prob_diff=a.mean_abs_prob_diff, inputs=a.inputs, calibration_images=calibration_images)


def _save(ov_model, xml: Path) -> Path:
    import openvino as ov

    xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov_model, xml, compress_to_fp16=False)
    return xml
