"""What the model store records about an imported model (its metadata), shared by the store, the
runner and the API's responses without the API models depending on the store."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from nailseg.model import Architecture
from nailseg.preprocess import Preprocessing


GATE_MIN_IOU = 0.97  # pooled IoU of the int8 and fp32 masks (bundled model: 0.981)
GATE_MAX_PROB_DIFF = 0.01  # mean |p_int8 - p_fp32| over all pixels (bundled model: 0.0016)
GATE_THRESHOLD = 0.5  # the masks compared are at this threshold, at the model's resolution


class Int8Gate(BaseModel):
    """How the int8 model agreed with fp32 at import time; stored in the model's metadata."""

    passed: bool
    mask_iou: float
    mean_abs_prob_diff: float
    min_mask_iou: float = GATE_MIN_IOU
    max_mean_abs_prob_diff: float = GATE_MAX_PROB_DIFF
    threshold: float = GATE_THRESHOLD
    inputs: int  # calibration photos x 4 (each photo and its three flips)
    calibration_images: str  # the calibration folder's name

    def summary(self) -> str:
        """e.g. ``IoU 0.981 >= 0.97, mean |dp| 0.0016 <= 0.01``."""
        iou_ok, diff_ok = self.mask_iou >= self.min_mask_iou, self.mean_abs_prob_diff <= self.max_mean_abs_prob_diff
        return (f"IoU {self.mask_iou:.3f} {'>=' if iou_ok else '<'} {self.min_mask_iou}, mean |dp| "
                f"{self.mean_abs_prob_diff:.4f} {'<=' if diff_ok else '>'} {self.max_mean_abs_prob_diff}")


class StoredModelInfo(BaseModel):
    """The metadata written with every imported model."""

    architecture: Architecture
    architecture_source: str
    model_variant: str
    parameters: int
    preprocessing: Preprocessing
    preprocessing_source: str  # "checkpoint" or "config.yaml"
    source_file: str
    source_sha256: str
    training: dict[str, Any] = {}
    int8_gate: Int8Gate | None = None  # None: no int8 model (no nncf, or imported before the gate)
