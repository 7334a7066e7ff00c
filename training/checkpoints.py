"""Writes checkpoints in the users' format (../shared/spec/checkpoint_format.md)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from nailseg.model.unet import AttentionUNet, parameter_count


def model_info(model: AttentionUNet) -> dict[str, Any]:
    n = parameter_count(model)
    return {
        "model_name": "AttentionUNet",
        "base_channels": model.arch.base_channels,
        "depth": model.arch.depth,
        "attention_enabled": model.arch.attention,
        "channels_per_level": model.arch.channels,
        "total_params": n,
        "model_size_mb": round(n * 4 / 2**20, 2),
    }


def checkpoint_payload(model: AttentionUNet, config: dict[str, Any], epoch: int, metrics: dict[str, float],
                       optimizer=None, scheduler=None) -> dict[str, Any]:
    payload = {
        "model_state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config,
        "model_info": model_info(model),
        "metrics": metrics,
        "epoch": epoch,
        "timestamp": datetime.now().isoformat(timespec="seconds"),
    }
    if optimizer is not None:
        payload["optimizer_state_dict"] = optimizer.state_dict()
    if scheduler is not None:
        payload["scheduler_state_dict"] = scheduler.state_dict()
    return payload


class CheckpointWriter:
    """best_model.pth, final_checkpoint.pth, the last ``keep`` epoch files and checkpoint_metadata.json."""

    def __init__(self, out_dir: Path, keep: int = 3):
        self.out_dir = out_dir
        self.keep = keep
        self.epoch_files: list[Path] = []
        self.history: list[dict[str, Any]] = []
        out_dir.mkdir(parents=True, exist_ok=True)

    def save_epoch(self, payload: dict[str, Any], is_best: bool) -> None:
        stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
        path = self.out_dir / f"checkpoint_epoch_{payload['epoch']:03d}_{stamp}.pth"
        torch.save(payload, path)
        self.epoch_files.append(path)
        while len(self.epoch_files) > self.keep:
            self.epoch_files.pop(0).unlink(missing_ok=True)
        if is_best:
            torch.save(payload, self.out_dir / "best_model.pth")
        self.history.append({"epoch": payload["epoch"], "file": path.name, "best": is_best, **payload["metrics"]})
        self._write_metadata()

    def save_final(self, payload: dict[str, Any]) -> None:
        torch.save(payload, self.out_dir / "final_checkpoint.pth")
        self._write_metadata()

    def _write_metadata(self) -> None:
        (self.out_dir / "checkpoint_metadata.json").write_text(json.dumps({"epochs": self.history}, indent=2))
