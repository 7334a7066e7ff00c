"""Building the engine the settings ask for: device, backend and precision (with ``auto``'s start-up trial).

On a CPU with OpenVINO the engine is ``OpenVinoEngine`` on the store entry's IR, and nothing here imports
torch: the precision trial and its agreement check run on numpy arrays. torch is imported only for what
needs it: the GPU, ``backend: torch``, and an entry imported before IRs were kept (converted at start-up).
Where torch is not installed those are refused in one line that names the image that has it
(``hardware.require_torch``, ``NO_IR_WITHOUT_TORCH``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from nailseg.config import Settings
from nailseg.inference import trial
from nailseg.inference.engine import InferenceEngine
from nailseg.inference.hardware import GPU_IMAGE, resolve_backend, resolve_device, torch_available
from nailseg.inference.ir import ir_file
from nailseg.inference.openvino_engine import OpenVinoEngine
from nailseg.inference.openvino_session import OpenVinoBackend
from nailseg.inference.precision import resolve_precision
from nailseg.model.spec import Int8Gate, Preprocessing

ModelSource = Any  # an AttentionUNet, or a callable that builds one (called only where torch is needed)
NO_IR_WITHOUT_TORCH = (f"this model store entry has no OpenVINO IR (an older import), and without torch it cannot be "
                       f"served: re-import it with `python -m models_import --checkpoint CHECKPOINT` where torch is "
                       f"installed (the {GPU_IMAGE} image)")


def _model(source: ModelSource) -> Any:
    return source if hasattr(source, "forward_logits") or not callable(source) else source()


def build_engine(backend: Any, prep: Preprocessing, device: Any = "cpu", **kw) -> InferenceEngine:
    """The engine for ``backend``: ``OpenVinoEngine`` (numpy buffers) or ``TorchEngine`` (torch buffers)."""
    if backend.name == "openvino":
        kw.pop("device_pools", None)
        return OpenVinoEngine(backend, prep, **kw)
    from nailseg.inference.torch_engine import TorchEngine

    return TorchEngine(backend, prep, device, **kw)


def engine_from_settings(model: ModelSource, prep: Preprocessing, settings: Settings,
                         openvino_dir: Path | None = None, int8_gate: Int8Gate | None = None, *,
                         identity: tuple[str, str] | None = None) -> InferenceEngine:
    """An engine on the configured device, backend and precision, with the configured buffers.

    ``model`` is the network, or what builds it (``store.load.LoadedModel.build_model``): it is built only for
    the torch paths. ``openvino_dir`` holds the IRs exported at import time; ``int8_gate`` is the import's int8
    gate result, which ``precision: auto`` needs to consider int8 (the start-up trial then decides on this CPU:
    trial.py). ``identity``, the model's (sha256, store tag), lets the trial cache its verdict.
    """
    s = settings
    device = resolve_device(s.model.device, s.model.fallback_to_cpu)
    backend = None  # or the one the start-up trial compiled
    if (s.inference.precision == "auto" and device == "cpu"
            and resolve_backend(s.inference.backend, device) == "openvino"):
        choice, backend = trial.auto_cpu(prep, openvino_dir, int8_gate, backend=s.inference.backend,
                                         batch_size=s.inference.batch_size,
                                         cache_dir=s.inference.precision_cache_dir, identity=identity)
    else:
        choice = resolve_precision(s.inference.precision, device, backend=s.inference.backend, int8_gate=int8_gate)
    if backend is None:
        if resolve_backend(s.inference.backend, device, choice.precision) == "openvino":
            if ir_file(openvino_dir, choice.precision) is not None or choice.precision == "int8":
                backend = OpenVinoBackend.from_ir(openvino_dir, choice.precision)
            else:
                if not torch_available():
                    raise RuntimeError(NO_IR_WITHOUT_TORCH)
                from nailseg.inference.backends import openvino_backend

                backend = openvino_backend(_model(model), prep.image_size, choice.precision, openvino_dir)
        else:
            from nailseg.inference.backends import TorchBackend

            backend = TorchBackend(_model(model), device, choice.precision)
    return build_engine(backend, prep, device, batch_size=s.inference.batch_size, slots=s.memory.pool_size_multiplier,
                        max_pool_bytes=s.memory.max_pool_size_gb * 2**30, device_pools=s.memory.enable_gpu_pools,
                        test_time_flip=s.inference.test_time_flip, precision_reason=choice.reason)
