"""Execution backends: how a normalised float batch becomes logits.

- ``torch``: PyTorch eager, channels_last, with bf16/fp16 autocast where it pays. Every device.
- ``openvino``: OpenVINO on CPU (bf16 on CPUs with AVX512-BF16/AMX; int8 for a model that passed its int8
  gate where the start-up trial shows it agrees with fp32 and is faster on this CPU, or on request: see
  precision.py, trial.py and quantize.py).
  On the 2-core AVX512-BF16 machine this project is developed on it ran the model about 2x faster
  than PyTorch bf16 and about 3x faster than PyTorch fp32 (bench/run.py prints the comparison). The
  IR is exported once, at import time, into the model store entry; start-up only compiles it.

Each buffer slot of the engine gets its own ``Session`` (an OpenVINO infer request is not
shareable between threads; a PyTorch module is).
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path
from typing import Protocol

import torch

from nailseg.inference.hardware import cpu_has_fast_bf16
from nailseg.model.unet import AttentionUNet

log = logging.getLogger(__name__)

OPENVINO_DIR = "openvino"  # inside a model store entry
IR_XML = "model.xml"  # the model as exported, in OPENVINO_DIR
INT8_XML = "model_int8.xml"  # next to it: the int8 model that passed its import gate (quantize.py)
INT8_FAILED_XML = "model_int8_failed.xml"  # or the one that failed it: served only when int8 is forced
GATE_PHOTOS = "gate_photos.npy"  # the gate's photos at model size (N, H, W, 3) uint8: the start-up trial's (trial.py)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def resolve_backend(requested: str, device: torch.device, precision: str = "auto") -> str:
    if requested == "openvino" and (device.type != "cpu" or not openvino_available()):
        raise ValueError("backend 'openvino' needs device cpu and the openvino package")
    if precision == "int8" and (requested == "torch" or device.type != "cpu" or not openvino_available()):
        raise ValueError("precision int8 is an OpenVINO CPU path: it needs device cpu, backend auto or openvino "
                         "and the openvino package")
    if requested != "auto":
        return requested
    return "openvino" if device.type == "cpu" and openvino_available() else "torch"


class Session(Protocol):
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 -> (N, 1, H, W) float32 logits, on the input's device."""


class TorchBackend:
    name = "torch"
    channels_last = True

    def __init__(self, model: AttentionUNet, device: torch.device, precision: str):
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


def _ir_file(ir_dir: Path | None, precision: str) -> Path | None:
    """The IR for this precision in ``ir_dir``: int8 (the gated one, else the one that failed the gate), or fp32."""
    names = (INT8_XML, INT8_FAILED_XML) if precision == "int8" else (IR_XML,)
    return next((ir_dir / n for n in names if ir_dir is not None and (ir_dir / n).exists()), None)


class OpenVinoBackend:
    name = "openvino"
    channels_last = False  # OpenVINO takes a plain NCHW array

    def __init__(self, model: AttentionUNet, image_size: tuple[int, int], precision: str, ir_dir: Path | None):
        import openvino as ov

        self.precision = precision
        xml = _ir_file(ir_dir, precision)
        if xml is not None:
            source = str(xml)
        elif precision == "int8":
            raise ValueError("precision int8 needs the int8 model that `python -m models_import` writes "
                             "when nncf is installed: re-import the checkpoint")
        else:
            log.info("no cached OpenVINO IR: exporting at start-up")
            source = convert_to_openvino(model, image_size)
        fast_bf16 = precision == "bf16" or (precision == "int8" and cpu_has_fast_bf16())  # int8: the ops left in float
        self.compiled = ov.Core().compile_model(source, "CPU", {
            "INFERENCE_PRECISION_HINT": "bf16" if fast_bf16 else "f32",
            "PERFORMANCE_HINT": "LATENCY",
        })

    def session(self) -> Session:
        request = self.compiled.create_infer_request()

        def run(x: torch.Tensor) -> torch.Tensor:
            out = request.infer({0: x.numpy()}, share_inputs=True)[0]
            return torch.from_numpy(out)  # valid until the next call on this request (same slot)

        return run
