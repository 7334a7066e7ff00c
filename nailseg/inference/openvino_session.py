"""An OpenVINO model compiled for the CPU, run on numpy arrays: the CPU path's backend (no torch).

It compiles the store entry's IR (``ir.py``) for the precision served: bf16 on CPUs with AVX512-BF16/AMX;
int8 for a model that passed its int8 gate where the start-up trial shows it agrees with fp32 and is
faster on this CPU, or on request (precision.py, trial.py, quantize.py). On the 2-core AVX512-BF16 machine
this project is developed on it ran the model about 2x faster than PyTorch bf16 and about 3x faster than
PyTorch fp32 (bench/run.py prints the comparison). Each buffer slot of the engine gets its own session:
an OpenVINO infer request is not shareable between threads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nailseg.inference.hardware import cpu_has_fast_bf16
from nailseg.inference.ir import ir_file

log = logging.getLogger(__name__)

NumpySession = Callable[[np.ndarray], np.ndarray]  # (N, 3, H, W) float32 -> (N, 1, H, W) float32 logits


class OpenVinoBackend:
    name = "openvino"
    channels_last = False  # OpenVINO takes a plain NCHW array

    def __init__(self, source: Path | Any, precision: str):
        """``source``: an IR .xml file, or an ``openvino.Model`` (converted at start-up: ``backends.py``)."""
        import openvino as ov

        self.precision = precision
        fast_bf16 = precision == "bf16" or (precision == "int8" and cpu_has_fast_bf16())  # int8: the ops left in float
        self.compiled = ov.Core().compile_model(str(source) if isinstance(source, Path) else source, "CPU", {
            "INFERENCE_PRECISION_HINT": "bf16" if fast_bf16 else "f32",
            "PERFORMANCE_HINT": "LATENCY",
        })

    @classmethod
    def from_ir(cls, ir_dir: Path | None, precision: str) -> OpenVinoBackend:
        """The IR in ``ir_dir`` for ``precision``; ValueError where the entry has none for it."""
        xml = ir_file(ir_dir, precision)
        if xml is None and precision == "int8":
            raise ValueError("precision int8 needs the int8 model that `python -m models_import` writes "
                             "when nncf is installed: re-import the checkpoint")
        if xml is None:
            raise ValueError(f"the model store entry has no OpenVINO IR for {precision}: re-import the checkpoint")
        return cls(xml, precision)

    def session(self) -> NumpySession:
        request = self.compiled.create_infer_request()

        def run(x: np.ndarray) -> np.ndarray:
            return request.infer({0: x}, share_inputs=True)[0]  # valid until the next call on this request (slot)

        return run
