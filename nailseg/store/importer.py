"""Importing a checkpoint into the BentoML model store as ``unet:<version>`` (offline: `python -m models_import`).

Weights are stored as safetensors (no code can hide in them); everything a server or a
person needs to know about the model is in the store entry's metadata.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import bentoml
import torch
from safetensors.torch import save_file

from nailseg.config import Settings
from nailseg.inference.backends import export_openvino
from nailseg.inference.hardware import openvino_available
from nailseg.inference.ir import OPENVINO_DIR
from nailseg.model.checkpoint import Checkpoint, CheckpointError
from nailseg.model.spec import Int8Gate, Preprocessing, StoredModelInfo
from nailseg.model.unet import AttentionUNet, parameter_count
from nailseg.store import quantize
from nailseg.store.entries import MODEL_NAME, find_imported
from nailseg.store.load import WEIGHTS_FILE


def preprocessing_for(ckpt: Checkpoint, settings: Settings) -> tuple[Preprocessing, str]:
    """The checkpoint's own preprocessing, else what config.yaml says."""
    if ckpt.preprocessing is not None:
        return ckpt.preprocessing, "checkpoint"
    p = settings.preprocessing
    if p.normalize:
        return Preprocessing(image_size=p.image_size, mean=p.mean, std=p.std), "config.yaml"
    return Preprocessing(image_size=p.image_size), "config.yaml"


def import_checkpoint(ckpt: Checkpoint, settings: Settings,
                      calibration: Path | None = None) -> tuple[bentoml.Model, bool]:
    """Save ``ckpt`` as a new ``unet`` version; returns (model, created). Same file twice: no new version.

    Where OpenVINO is installed the entry also gets its IR, and with NNCF an int8 IR calibrated on the
    photos in ``calibration`` (default: the project's examples/) and checked against fp32 on them: the
    gate's result goes into the metadata, a failed int8 IR is kept only under its own name
    (quantize.export_gated_int8).
    """
    existing = find_imported(ckpt.sha256)
    if existing is not None:
        return existing, False
    model = ckpt.build_model()
    prep, prep_source = preprocessing_for(ckpt, settings)
    with torch.inference_mode():  # one forward pass proves the weights run and give probabilities
        out = model(torch.rand(1, ckpt.architecture.input_channels, *prep.image_size))
    if out.shape[-2:] != torch.Size(prep.image_size) or not (0 <= float(out.min()) <= float(out.max()) <= 1):
        raise CheckpointError(ckpt.path, f"test forward pass gave shape {tuple(out.shape)}, not probabilities")
    with tempfile.TemporaryDirectory(prefix="nailseg-ir-") as ir_dir:
        gate = _export_ir(model, prep, calibration or quantize.DEFAULT_CALIBRATION, Path(ir_dir))
        return _save(ckpt, model, prep, prep_source, gate, Path(ir_dir)), True


def _export_ir(model: AttentionUNet, prep: Preprocessing, calibration: Path, ir_dir: Path) -> Int8Gate | None:
    """The OpenVINO IRs (fp32, and gated int8 with NNCF) into ``ir_dir``, so the runner only compiles at start-up."""
    if not openvino_available():
        return None
    export_openvino(model, prep.image_size, ir_dir)
    return quantize.export_gated_int8(model, prep, calibration, ir_dir) if quantize.nncf_available() else None


def _save(ckpt: Checkpoint, model: AttentionUNet, prep: Preprocessing, prep_source: str,
          gate: Int8Gate | None, ir_dir: Path) -> bentoml.Model:
    info = StoredModelInfo(
        architecture=ckpt.architecture,
        architecture_source=ckpt.architecture_source,
        model_variant=ckpt.architecture.variant,
        parameters=parameter_count(model),
        preprocessing=prep,
        preprocessing_source=prep_source,
        source_file=str(ckpt.path.resolve()),
        source_sha256=ckpt.sha256,
        training=_plain(ckpt.training),
        int8_gate=gate,
    )
    labels = {
        "source_sha256": ckpt.sha256,
        "variant": info.model_variant,
        "framework": "pytorch",
        "task": "nail-segmentation",
    }
    with bentoml.models.create(MODEL_NAME, labels=labels, metadata=info.model_dump(mode="json")) as stored:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, stored.path_of(WEIGHTS_FILE))
        if any(ir_dir.iterdir()):
            shutil.copytree(ir_dir, stored.path_of(OPENVINO_DIR))
    return stored


def _plain(value: Any) -> Any:
    """Metadata must be plain JSON: turn tensors and numbers into floats/ints."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


