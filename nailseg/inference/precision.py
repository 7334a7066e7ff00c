"""Which precision the engine serves, and why (``/model-info`` shows both).

``auto``: on a GPU bf16 where supported, else fp16. On a CPU with the OpenVINO backend, int8 where the
CPU has int8 dot products (AMX-INT8, AVX512-VNNI, AVX-VNNI) and the model's int8 IR passed its import
gate (quantize.py); else bf16 where the CPU has AVX512-BF16/AMX; else fp32. A forced ``int8`` on a model
that failed the gate still serves int8 (its ``model_int8_failed.xml``) with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from nailseg.inference.backends import openvino_available
from nailseg.inference.hardware import cpu_bf16_flags, cpu_int8_flags
from nailseg.model.spec import Int8Gate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str
    reason: str


def resolve_precision(requested: str, device: torch.device, *, backend: str = "auto",
                      int8_gate: Int8Gate | None = None) -> PrecisionChoice:
    """``requested`` is inference.precision, ``backend`` inference.backend; ``int8_gate`` the model's gate result."""
    if requested != "auto":
        if requested == "fp16" and device.type == "cpu":
            raise ValueError("precision fp16 is for CUDA; use bf16, int8 or fp32 on CPU")
        if requested == "int8" and int8_gate is not None and not int8_gate.passed:
            reason = f"int8: set in config, although the model failed the int8 gate ({int8_gate.summary()})"
            log.warning("%s: its masks may differ from fp32's; precision auto or fp32 avoid it", reason)
            return PrecisionChoice("int8", reason)
        return PrecisionChoice(requested, f"{requested}: set in config")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", "auto: GPU supports bf16")
        return PrecisionChoice("fp16", "auto: GPU without bf16")
    int8_flags, bf16_flags = cpu_int8_flags(), cpu_bf16_flags()
    why_not_int8 = _why_not_int8(int8_flags, backend, int8_gate)
    if why_not_int8 is None:
        return PrecisionChoice("int8", f"auto: CPU has {int8_flags[0]} and the int8 gate passed "
                                       f"(IoU {int8_gate.mask_iou:.3f})")
    if bf16_flags:
        return PrecisionChoice("bf16", f"auto: CPU has {bf16_flags[0]}; not int8: {why_not_int8}")
    return PrecisionChoice("fp32", f"auto: CPU has no bf16 (AVX512-BF16/AMX); not int8: {why_not_int8}")


def _why_not_int8(int8_flags: list[str], backend: str, gate: Int8Gate | None) -> str | None:
    if not int8_flags:
        return "CPU has no int8 dot products (AVX512-VNNI, AVX-VNNI, AMX-INT8)"
    if backend == "torch" or not openvino_available():
        return "int8 needs the OpenVINO backend"
    if gate is None:
        return "the model has no gated int8 IR (imported without nncf, or before the int8 gate existed)"
    if not gate.passed:
        return f"the model failed the int8 gate ({gate.summary()})"
    return None
