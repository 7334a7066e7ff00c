"""The BentoML model store: import a checkpoint as ``unet:<version>``, load it back.

Weights are stored as safetensors (no code can hide in them); everything a server or a
person needs to know about the model is in the store entry's metadata.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import torch
from safetensors.torch import load_file, save_file

from nailseg import quantize
from nailseg.backends import IR_XML, OPENVINO_DIR, export_openvino, openvino_available
from nailseg.checkpoint import Checkpoint, CheckpointError
from nailseg.config import Settings
from nailseg.model import AttentionUNet, parameter_count
from nailseg.model_info import StoredModelInfo
from nailseg.preprocess import Preprocessing

MODEL_NAME = "unet"
WEIGHTS_FILE = "weights.safetensors"


def preprocessing_for(ckpt: Checkpoint, settings: Settings) -> tuple[Preprocessing, str]:
    """The checkpoint's own preprocessing, else what config.yaml says."""
    if ckpt.preprocessing is not None:
        return ckpt.preprocessing, "checkpoint"
    p = settings.preprocessing
    if p.normalize:
        return Preprocessing(image_size=p.image_size, mean=p.mean, std=p.std), "config.yaml"
    return Preprocessing(image_size=p.image_size), "config.yaml"


def find_imported(sha256: str) -> bentoml.Model | None:
    try:
        models = bentoml.models.list(MODEL_NAME)
    except bentoml.exceptions.NotFound:
        return None
    for model in models:
        if model.info.labels.get("source_sha256") == sha256:
            return model
    return None


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


def _export_ir(model: AttentionUNet, prep: Preprocessing, calibration: Path, ir_dir: Path) -> quantize.Int8Gate | None:
    """The OpenVINO IRs (fp32, and gated int8 with NNCF) into ``ir_dir``, so the runner only compiles at start-up."""
    if not openvino_available():
        return None
    export_openvino(model, prep.image_size, ir_dir)
    return quantize.export_gated_int8(model, prep, calibration, ir_dir) if quantize.nncf_available() else None


def _save(ckpt: Checkpoint, model: AttentionUNet, prep: Preprocessing, prep_source: str,
          gate: quantize.Int8Gate | None, ir_dir: Path) -> bentoml.Model:
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


@dataclass
class LoadedModel:
    model: AttentionUNet  # eval mode, on CPU
    info: StoredModelInfo
    tag: str
    openvino_dir: Path | None  # the IR exported at import time, where there is one


def require_stored(tag: str = f"{MODEL_NAME}:latest") -> bentoml.Model:
    """The store entry, or a LookupError that says how to make one."""
    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as e:
        raise LookupError(f"{e}; import a checkpoint first: python -m models_import") from None


def candidates(pinned: str = "latest") -> list[bentoml.Model]:
    """The store entries a runner may serve, best first: the pinned tag alone, or every ``unet``
    version newest first (so a bad newest entry falls back to the one before it)."""
    if pinned != "latest":
        return [require_stored(f"{MODEL_NAME}:{pinned}")]
    try:
        models = bentoml.models.list(MODEL_NAME)
    except bentoml.exceptions.NotFound:
        models = []
    if not models:
        require_stored()  # raises the LookupError that says how to import one
    return sorted(models, key=lambda m: m.info.creation_time, reverse=True)


def load_stored(tag: str = f"{MODEL_NAME}:latest") -> LoadedModel:
    """Load a store entry; ValueError (or the loader's own error) for one that cannot be served."""
    stored = require_stored(tag)
    info = StoredModelInfo.model_validate(stored.info.metadata)
    model = AttentionUNet(info.architecture)
    weights = load_file(stored.path_of(WEIGHTS_FILE))
    bad = [name for name, t in weights.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{len(bad)} weight tensors hold NaN or infinity (first: {bad[0]})")
    model.load_state_dict(weights, strict=True)
    ir = Path(stored.path_of(OPENVINO_DIR))
    return LoadedModel(model.eval(), info, str(stored.tag), ir if (ir / IR_XML).exists() else None)
