"""Which precision the engine serves, and why (``/model-info`` shows both).

``auto``: on a GPU bf16 where supported, else fp16. On a CPU with the OpenVINO backend and a model whose
int8 IR passed its import gate, the start-up trial decides (trial.py): int8 where on this CPU it agrees
with fp32 on the gate's photos and is faster than the fastest float path, else that float path. Where
int8 is no candidate (no OpenVINO, backend torch, no gated int8 IR): bf16 where the CPU has
AVX512-BF16/AMX, else fp32. A forced ``int8`` on a model that failed the gate still serves int8 (its
``model_int8_failed.xml``) with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from nailseg.inference.hardware import cpu_bf16_flags, openvino_available
from nailseg.inference.ir import INT8_XML
from nailseg.model.spec import Int8Gate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str
    reason: str


def resolve_precision(requested: str, device: str, *, backend: str = "auto",
                      int8_gate: Int8Gate | None = None) -> PrecisionChoice:
    """``requested`` is inference.precision, ``device`` ``cpu`` or ``cuda``, ``backend`` inference.backend;
    ``int8_gate`` the model's gate result."""
    device = getattr(device, "type", device)  # a torch.device too
    if requested != "auto":
        if requested == "fp16" and device == "cpu":
            raise ValueError("precision fp16 is for CUDA; use bf16, int8 or fp32 on CPU")
        if requested == "int8" and int8_gate is not None and not int8_gate.passed:
            reason = f"int8: set in config, although the model failed the int8 gate ({int8_gate.summary()})"
            log.warning("%s: its masks may differ from fp32's; precision auto or fp32 avoid it", reason)
            return PrecisionChoice("int8", reason)
        return PrecisionChoice(requested, f"{requested}: set in config")
    if device == "cuda":
        import torch  # the GPU path has it (hardware.resolve_device)

        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", "auto: GPU supports bf16")
        return PrecisionChoice("fp16", "auto: GPU without bf16")
    why_not = why_not_int8(backend, int8_gate)
    return float_choice(why_not or "not measured on this CPU (the start-up trial decides: trial.auto_cpu)")


def float_choice(why_not: str) -> PrecisionChoice:
    """The float path ``auto`` serves on this CPU without measuring: bf16 where it has AVX512-BF16/AMX, else fp32."""
    bf16_flags = cpu_bf16_flags()
    if bf16_flags:
        return PrecisionChoice("bf16", f"auto: CPU has {bf16_flags[0]}; not int8: {why_not}")
    return PrecisionChoice("fp32", f"auto: CPU has no bf16 (AVX512-BF16/AMX); not int8: {why_not}")


def why_not_int8(backend: str, gate: Int8Gate | None, ir_dir: Path | None = None) -> str | None:
    """Why int8 is no candidate for ``auto`` on this CPU (None: it is one, and the start-up trial decides).

    ``ir_dir`` is the model's IR folder (``None``: it has none); without it only the settings and the gate are
    looked at."""
    if backend == "torch" or not openvino_available():
        return "int8 needs the OpenVINO backend"
    if gate is None:
        return "the model has no gated int8 IR (imported without nncf, or before the int8 gate existed)"
    if not gate.passed:
        return f"the model failed the int8 gate ({gate.summary()})"
    if ir_dir is not None and not (ir_dir / INT8_XML).exists():
        return f"the model's IR folder has no {INT8_XML}"
    return None
