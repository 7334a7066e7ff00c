"""What this machine can do: device choice and the CPU's bf16 support."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


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


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AMX or AVX512-BF16)."""
    flags = set(_cpuinfo("flags").split())
    return any(flag in flags for flag in BF16_CPU_FLAGS)


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
