"""Loading a store entry for serving: its weights (safetensors, which cannot carry code), checked.

The weights are checked with numpy (finite); where torch is installed they are also loaded into the network
their metadata describes (strictly: an entry whose metadata and weights disagree is refused). Without torch
that second check is left out: the CPU path serves the entry's OpenVINO IR, exported from those weights at
import time, and never builds the network."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open

from nailseg.inference.hardware import torch_available
from nailseg.inference.ir import IR_XML, OPENVINO_DIR
from nailseg.model.spec import StoredModelInfo
from nailseg.store.entries import MODEL_NAME, require_stored

WEIGHTS_FILE = "weights.safetensors"


@dataclass
class LoadedModel:
    info: StoredModelInfo
    tag: str
    weights: Path  # the checked safetensors file
    openvino_dir: Path | None  # the IR exported at import time, where there is one
    _model: Any = field(default=None, repr=False)

    def build_model(self):
        """The AttentionUNet with these weights, eval mode, on CPU (imports torch; built once)."""
        if self._model is None:
            from safetensors.torch import load_file

            from nailseg.model.unet import AttentionUNet

            model = AttentionUNet(self.info.architecture)
            model.load_state_dict(load_file(self.weights), strict=True)
            self._model = model.eval()
        return self._model


def _check_finite(path: Path) -> None:
    with safe_open(path, framework="np") as f:
        bad = [name for name in f.keys() if np.issubdtype((t := f.get_tensor(name)).dtype, np.floating)
               and not np.isfinite(t).all()]
    if bad:
        raise ValueError(f"{len(bad)} weight tensors hold NaN or infinity (first: {bad[0]})")


def load_stored(tag: str = f"{MODEL_NAME}:latest") -> LoadedModel:
    """Load a store entry; ValueError (or the loader's own error) for one that cannot be served."""
    stored = require_stored(tag)
    info = StoredModelInfo.model_validate(stored.info.metadata)
    weights = Path(stored.path_of(WEIGHTS_FILE))
    _check_finite(weights)
    ir = Path(stored.path_of(OPENVINO_DIR))
    loaded = LoadedModel(info, str(stored.tag), weights, ir if (ir / IR_XML).exists() else None)
    if torch_available():
        loaded.build_model()  # the weights fit the architecture their metadata names
    return loaded
