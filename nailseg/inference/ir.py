"""The OpenVINO IR files of a model store entry, and which one serves a precision (no torch, no OpenVINO)."""

from __future__ import annotations

from pathlib import Path

OPENVINO_DIR = "openvino"  # inside a model store entry
IR_XML = "model.xml"  # the model as exported, in OPENVINO_DIR
INT8_XML = "model_int8.xml"  # next to it: the int8 model that passed its import gate (quantize.py)
INT8_FAILED_XML = "model_int8_failed.xml"  # or the one that failed it: served only when int8 is forced
GATE_PHOTOS = "gate_photos.npy"  # the gate's photos at model size (N, H, W, 3) uint8: the start-up trial's (trial.py)


def ir_file(ir_dir: Path | None, precision: str) -> Path | None:
    """The IR for this precision in ``ir_dir``: int8 (the gated one, else the one that failed the gate), or fp32."""
    names = (INT8_XML, INT8_FAILED_XML) if precision == "int8" else (IR_XML,)
    return next((ir_dir / n for n in names if ir_dir is not None and (ir_dir / n).exists()), None)
