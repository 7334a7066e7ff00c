"""What a model is, without torch: its architecture, its preprocessing, and what the model store records
about an imported model (its metadata, the int8 gate). Shared by the store, the runner, the image
pipeline and the API's responses; the network itself is in ``nailseg.model.unet``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

VariantName = Literal["lightweight", "standard", "deep"]


class Architecture(BaseModel):
    """Everything needed to build the network; stored with every imported model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_channels: int = Field(gt=0)
    depth: int = Field(ge=1, le=7)
    attention: bool = True
    batch_norm: bool = True
    input_channels: int = 3
    output_channels: int = 1

    @property
    def channels(self) -> list[int]:
        return [self.base_channels * 2**i for i in range(self.depth + 1)]

    @property
    def variant(self) -> str:
        """The preset this architecture matches, or "custom"."""
        for name, preset in PRESETS.items():
            if preset == self:
                return name
        return "custom"


PRESETS: dict[str, Architecture] = {
    "lightweight": Architecture(base_channels=32, depth=3),
    "standard": Architecture(base_channels=64, depth=4),
    "deep": Architecture(base_channels=64, depth=5),
}



class Preprocessing(BaseModel):
    """How pixels become model input: resize, then ``(x / 255 - mean) / std``.

    ``normalize_images: true`` in a training checkpoint means /255 only: mean 0, std 1.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_size: tuple[int, int] = Field(description="(height, width) of the model input")
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def scale_only(self) -> bool:
        return self.mean == (0.0, 0.0, 0.0) and self.std == (1.0, 1.0, 1.0)


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
