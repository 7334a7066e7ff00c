"""Loading a store entry for serving: its weights (safetensors, which cannot carry code), checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from nailseg.inference.backends import IR_XML, OPENVINO_DIR
from nailseg.model.spec import StoredModelInfo
from nailseg.model.unet import AttentionUNet
from nailseg.store.entries import MODEL_NAME, require_stored

WEIGHTS_FILE = "weights.safetensors"


@dataclass
class LoadedModel:
    model: AttentionUNet  # eval mode, on CPU
    info: StoredModelInfo
    tag: str
    openvino_dir: Path | None  # the IR exported at import time, where there is one


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
