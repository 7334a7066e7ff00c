"""What this machine can do: device choice and the CPU's bf16 support."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AMX or AVX512-BF16)."""
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


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
