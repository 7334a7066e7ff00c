#!/usr/bin/env bash
# Every GPU check in one run (meant to finish in under 8 minutes on one GPU):
#   1. the engine on CUDA: fast paths (bf16/fp16, channels_last, pinned buffers) agree with fp32;
#   2. the benchmark with the runner on the GPU: ceiling at batch 1..32, the service over HTTP
#      at concurrency 1/8/32/64, the naive peer, and the ratios.
# Usage (from the project root, on a machine with a GPU): bash bench/gpu_check.sh [OUT_DIR]
set -euo pipefail
out="${1:-${OUT:-bench/results-gpu}}"
mkdir -p "$out"
python3 -m pip install -q -r requirements.txt "matplotlib>=3.8" "pytest>=8" httpx 2>&1 | tail -2 || true
python3 - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device visible"
print("GPU:", torch.cuda.get_device_name(), "torch", torch.__version__, "bf16:", torch.cuda.is_bf16_supported())
PY
export UNET_MODEL_DEVICE=cuda UNET_MODEL_FALLBACK_TO_CPU=false UNET_INFERENCE_BATCH_SIZE=32
export UNET_INFERENCE_MAX_LATENCY_MS=50 UNET_MEMORY_POOL_SIZE_MULTIPLIER=4
python3 -m pytest -q tests/test_engine.py -k "fast_paths and torch" 2>&1 | tail -3
for precision in fp32 bf16 fp16; do
  UNET_INFERENCE_PRECISION=$precision python3 - <<'PY'
import os, time, numpy as np, torch
from pathlib import Path
from nailseg.config import load_settings
from training.evaluate import engine_for
e = engine_for(Path("models/unet/checkpoints/best_model.pth"), load_settings())
h, w = e.prep.image_size
for n in (1, 8, 32):
    x = np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    for _ in range(5): e.infer(x)
    torch.cuda.synchronize(); t = time.perf_counter(); k = 0
    while time.perf_counter() - t < 3: e.infer(x); k += n
    print(f"engine cuda {e.precision:5s} batch {n:3d}: {k / (time.perf_counter() - t):8.1f} img/s")
PY
done
python3 -m bench.run --seconds 15 --levels 1 8 32 64 --photos 32 --out "$out" 2>&1 | tee "$out/bench.log"
