"""Reads the checkpoints users already have (../shared/spec/checkpoint_format.md).

Never executes code from a file: every load is ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nailseg.model.spec import PRESETS, Architecture, Preprocessing
from nailseg.model.unet import AttentionUNet

SUFFIXES = (".pth", ".pt", ".ckpt")
_TIMESTAMP = re.compile(r"(\d{8}_\d{6})")


class CheckpointError(Exception):
    """A checkpoint that cannot be served; the message names the file and the problem."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass
class Checkpoint:
    """What a checkpoint file says, normalised: weights, architecture, preprocessing, training facts."""

    path: Path
    sha256: str
    state_dict: dict[str, torch.Tensor]
    architecture: Architecture
    architecture_source: str  # "config", "model_info", "tensor shapes" or "model_variant"
    preprocessing: Preprocessing | None  # None: the file does not say, config.yaml decides
    training: dict[str, Any] = field(default_factory=dict)  # epoch, metrics, timestamp where present

    def build_model(self) -> AttentionUNet:
        model = AttentionUNet(self.architecture)
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()
            raise CheckpointError(
                self.path, f"weights do not match {self.architecture.model_dump()}: {' '.join(first[:3])[:400]}"
            ) from None
        return model.eval()


def find_checkpoint(directory: Path) -> Path:
    """Pick the file to serve from a directory: a "best" file, then a "final" one, then the newest timestamped."""
    if not directory.is_dir():
        raise CheckpointError(directory, "checkpoint directory does not exist")
    files = [p for p in directory.iterdir() if p.is_file() and p.suffix in SUFFIXES]
    if not files:
        raise CheckpointError(directory, f"no checkpoint file ({', '.join(SUFFIXES)}) in directory")

    def newest(candidates: list[Path]) -> Path:
        return max(candidates, key=lambda p: (_timestamp(p), p.stat().st_mtime, p.name))

    for word in ("best", "final"):
        named = [p for p in files if word in p.stem.lower()]
        if named:
            return newest(named)
    return newest(files)


def _timestamp(path: Path) -> str:
    m = _TIMESTAMP.search(path.stem)
    return m.group(1) if m else ""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_checkpoint(path: Path, fallback_variant: str = "standard") -> Checkpoint:
    """Load a checkpoint file safely and work out what it holds."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file does not exist")
    if path.suffix not in SUFFIXES:
        raise CheckpointError(path, f"unsupported checkpoint suffix {path.suffix!r}; expected one of {SUFFIXES}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" not in str(e):
            raise CheckpointError(path, "corrupt or not a PyTorch checkpoint (cannot be unpickled)") from None
        raise CheckpointError(
            path, f"refused: the file needs pickled Python code to load ({_unsupported_global(str(e))}); "
            "re-save it with tensors and plain types only"
        ) from None
    except Exception as e:  # torch raises RuntimeError, EOFError, zipfile/OSError for corrupt files
        raise CheckpointError(path, f"corrupt or not a PyTorch checkpoint ({type(e).__name__}: {str(e)[:200]})") from None

    state_dict, meta = _split(path, raw)
    arch, source = _architecture(path, state_dict, meta, fallback_variant)
    training = {k: meta[k] for k in ("epoch", "metrics", "timestamp") if k in meta}
    return Checkpoint(path, file_sha256(path), state_dict, arch, source, _preprocessing(meta), training)


def _unsupported_global(message: str) -> str:
    m = re.search(r"GLOBAL ([\w.]+)", message)
    return f"it references {m.group(1)}" if m else "it references Python objects"


def _split(path: Path, raw: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Separate the weights from the rest, whatever the layout."""
    if not isinstance(raw, dict):
        raise CheckpointError(path, f"expected a dict of tensors, found {type(raw).__name__}")
    for key in ("model_state_dict", "state_dict"):
        if isinstance(raw.get(key), dict):
            weights, meta = raw[key], raw
            break
    else:
        weights, meta = raw, {}
    state = {k: v for k, v in weights.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise CheckpointError(path, "no tensors found (expected model_state_dict, state_dict or a bare state dict)")
    for prefix in ("model.", "module."):  # Lightning modules, DataParallel
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state, meta


def _architecture(path: Path, state: dict[str, torch.Tensor], meta: dict[str, Any],
                  fallback_variant: str) -> tuple[Architecture, str]:
    inferred = _from_shapes(state)
    config, info = meta.get("config"), meta.get("model_info")
    try:
        if isinstance(config, dict) and "base_channels" in config and "depth" in config:
            fields = {k: config[k] for k in ("base_channels", "depth", "batch_norm", "input_channels",
                                              "output_channels") if k in config}
            if "attention" in config:
                fields["attention"] = config["attention"]
            if inferred is not None:  # keys the config leaves out come from the tensors
                fields = {**inferred.model_dump(), **fields}
            return Architecture(**fields), "config"
        if isinstance(info, dict) and "base_channels" in info and "depth" in info:
            fields = {"base_channels": info["base_channels"], "depth": info["depth"]}
            if "attention_enabled" in info:
                fields["attention"] = info["attention_enabled"]
            if inferred is not None:
                fields = {**inferred.model_dump(), **fields}
            return Architecture(**fields), "model_info"
    except (TypeError, ValueError) as e:
        raise CheckpointError(path, f"invalid architecture in checkpoint metadata: {e}") from None
    if inferred is not None:
        return inferred, "tensor shapes"
    return PRESETS[fallback_variant], "model_variant"


def _from_shapes(state: dict[str, torch.Tensor]) -> Architecture | None:
    first = state.get("encoder_blocks.0.conv1.block.0.weight")
    if first is None or first.ndim != 4:
        return None
    levels = {int(m.group(1)) for k in state if (m := re.match(r"encoder_blocks\.(\d+)\.", k))}
    final = state.get("final_conv.weight")
    return Architecture(
        base_channels=first.shape[0],
        depth=max(levels),
        attention=any(k.startswith("attention_gates.") for k in state),
        batch_norm="encoder_blocks.0.conv1.block.1.running_mean" in state,
        input_channels=first.shape[1],
        output_channels=final.shape[0] if final is not None else 1,
    )


def _preprocessing(meta: dict[str, Any]) -> Preprocessing | None:
    """Preprocessing the model was trained with, when the checkpoint says (else None)."""
    config = meta.get("config")
    if not isinstance(config, dict) or "image_size" not in config:
        return None
    size = config["image_size"]
    size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if config.get("normalize_images", True):
        return Preprocessing(image_size=size)  # /255 only: what normalize_images meant
    return Preprocessing(image_size=size, std=(1 / 255, 1 / 255, 1 / 255))  # raw 0..255 pixels
