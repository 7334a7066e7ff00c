"""What this machine can do: which runtimes are installed (torch, OpenVINO), device choice, and the CPU's
bf16 and int8 matrix instructions. No torch import here: ``torch_available`` only looks for it."""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path

log = logging.getLogger(__name__)

GPU_IMAGE = "nail-segmentation:gpu"  # the image with torch: the GPU path and backend torch
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
INT8_CPU_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")  # int8 dot products: what makes int8 pay on a CPU


@functools.cache
def _cpuinfo(field: str) -> str:
    """The first value of ``field`` in /proc/cpuinfo ("" where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == field:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_model() -> str:
    return _cpuinfo("model name") or "unknown CPU"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (/proc/cpuinfo); tests replace this to play other CPUs."""
    return frozenset(_cpuinfo("flags").split())


def cpu_bf16_flags() -> list[str]:
    """Which native bf16 matrix instructions (AMX, AVX512-BF16) the CPU has."""
    flags = cpu_flags()
    return [f for f in BF16_CPU_FLAGS if f in flags]


def cpu_int8_flags() -> list[str]:
    """Which int8 dot-product instructions (AMX-INT8, AVX512-VNNI, AVX-VNNI) the CPU has."""
    flags = cpu_flags()
    return [f for f in INT8_CPU_FLAGS if f in flags]


def cpu_has_fast_bf16() -> bool:
    return bool(cpu_bf16_flags())


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except ValueError:  # sys.modules holds None for it: imports of it are blocked
        return False


def torch_available() -> bool:
    return _installed("torch")


def openvino_available() -> bool:
    return _installed("openvino")


def resolve_backend(requested: str, device: str, precision: str = "auto") -> str:
    """``torch`` or ``openvino`` for inference.backend ``requested`` on ``device``; ValueError where it cannot,
    RuntimeError (``require_torch``) where it needs torch and there is none."""
    device = getattr(device, "type", device)  # a torch.device too
    if requested == "openvino" and (device != "cpu" or not openvino_available()):
        raise ValueError("backend 'openvino' needs device cpu and the openvino package")
    if precision == "int8" and (requested == "torch" or device != "cpu" or not openvino_available()):
        raise ValueError("precision int8 is an OpenVINO CPU path: it needs device cpu, backend auto or openvino "
                         "and the openvino package")
    if requested == "torch":
        require_torch("backend 'torch'")
    if requested != "auto":
        return requested
    if device == "cpu" and openvino_available():
        return "openvino"
    require_torch("serving without OpenVINO")
    return "torch"


def require_torch(what: str) -> None:
    """RuntimeError, in one line naming the image that has torch, where torch is not installed."""
    if not torch_available():
        raise RuntimeError(f"{what} needs torch, which this image does not have: use the {GPU_IMAGE} image "
                           "(or pip install torch)")


def require_runtimes(device: str, backend: str) -> None:
    """Refuse (``require_torch``) settings that need torch where it is not installed: device cuda, backend torch."""
    if backend == "torch":
        require_torch("backend 'torch'")
    if device == "cuda":
        require_torch("device 'cuda'")


def resolve_device(requested: str, fallback_to_cpu: bool) -> str:
    """``cpu`` or ``cuda``: ``auto`` picks CUDA when present; ``cuda`` without a GPU falls back to CPU only if
    allowed. Without torch: ``auto`` is the CPU, ``cuda`` is refused (``require_torch``)."""
    if requested == "cpu":
        return "cpu"
    if not torch_available():
        if requested == "auto":
            return "cpu"
        require_torch("device 'cuda'")
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if requested == "auto":
        return "cpu"
    if fallback_to_cpu:
        log.warning("device 'cuda' requested but no CUDA device is available: falling back to CPU")
        return "cpu"
    raise RuntimeError("device 'cuda' requested, no CUDA device is available and fallback_to_cpu is false")
