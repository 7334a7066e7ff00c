"""What this machine can do: device choice and the CPU's bf16 and int8 matrix instructions."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

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


def resolve_device(requested: str, fallback_to_cpu: bool) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU falls back to CPU only if allowed."""
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "auto":
        return torch.device("cpu")
    if fallback_to_cpu:
        log.warning("device 'cuda' requested but no CUDA device is available: falling back to CPU")
        return torch.device("cpu")
    raise RuntimeError("device 'cuda' requested, no CUDA device is available and fallback_to_cpu is false")
