"""The PyTorch side of execution: PyTorch eager on any device, and converting the model to OpenVINO.

- ``torch``: PyTorch eager, channels_last, with bf16/fp16 autocast where it pays. Every device; the GPU path
  and ``backend: torch`` (``torch_engine.py``).
- OpenVINO runs on the CPU without torch (``openvino_session.py``, ``openvino_engine.py``); torch is needed
  only to make its IR: at import time (``export_openvino``, into the model store entry), or at start-up for
  an entry imported before IRs were kept (``openvino_backend``).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Protocol

import torch

from nailseg.inference.ir import IR_XML, ir_file
from nailseg.inference.openvino_session import OpenVinoBackend
from nailseg.model.unet import AttentionUNet

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class Session(Protocol):
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 -> (N, 1, H, W) float32 logits, on the input's device."""


class TorchBackend:
    name = "torch"
    channels_last = True

    def __init__(self, model: AttentionUNet, device: torch.device | str, precision: str):
        device = torch.device(device)
        self.model = model.to(device).to(memory_format=torch.channels_last).eval()
        self.device, self.precision = device, precision
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def session(self) -> Session:
        return self._run

    @torch.inference_mode()
    def _run(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=DTYPES[self.precision], enabled=self.precision != "fp32"):
            return self.model.forward_logits(x).float()


class _Logits(torch.nn.Module):
    def __init__(self, model: AttentionUNet):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_logits(x)


def convert_to_openvino(model: AttentionUNet, image_size: tuple[int, int]):
    """PyTorch -> OpenVINO model with a dynamic batch dimension (traces once; its deprecation noise muted)."""
    import openvino as ov

    h, w = image_size
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return ov.convert_model(_Logits(model.eval()), example_input=torch.zeros(1, 3, h, w), input=[(-1, 3, h, w)])


def export_openvino(model: AttentionUNet, image_size: tuple[int, int], out_dir: Path) -> Path:
    """Write the model (logits, dynamic batch) as OpenVINO IR; returns the .xml path."""
    import openvino as ov

    ir = convert_to_openvino(model, image_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(ir, out_dir / IR_XML, compress_to_fp16=False)
    return out_dir / IR_XML


def openvino_backend(model: AttentionUNet, image_size: tuple[int, int], precision: str,
                     ir_dir: Path | None) -> OpenVinoBackend:
    """The IR in ``ir_dir`` for ``precision``; without one (fp32, bf16) the model converted now."""
    if ir_file(ir_dir, precision) is not None or precision == "int8":
        return OpenVinoBackend.from_ir(ir_dir, precision)
    log.info("no cached OpenVINO IR: exporting at start-up")
    return OpenVinoBackend(convert_to_openvino(model, image_size), precision)
