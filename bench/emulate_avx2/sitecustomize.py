"""Play an AVX2-only CPU (no AVX-512, VNNI, AMX or BF16) on a newer one, for the benchmark only.

    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 PYTHONPATH=bench/emulate_avx2 python -m bench.run

The two variables cap the instructions oneDNN (OpenVINO's CPU plugin, PyTorch) and PyTorch's own kernels
use; this file, imported by every Python process started with it on PYTHONPATH (the servers' workers
too), hides the newer flags from nailseg.inference.hardware, which reads /proc/cpuinfo. What it cannot
play is the other CPU's caches, clocks and memory: read the ratios, not the rates.
"""

import os

if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2":
    from nailseg.inference import hardware

    _real = hardware.cpu_flags()
    _avx2 = frozenset(f for f in _real if not f.startswith(("avx512", "amx")) and "vnni" not in f)
    hardware.cpu_flags = lambda: _avx2
