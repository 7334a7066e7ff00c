"""The CPU runner without torch: the store entry's OpenVINO IR served on numpy arrays, the start-up trial and
its agreement check included, with the very probabilities the torch-installed path gives; and the one-line
refusals where torch would be needed (an entry without an IR, ``backend: torch``, ``device: cuda``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from conftest import EXAMPLES, ROOT
from support.server import serving

from nailseg.inference.hardware import GPU_IMAGE, openvino_available
from nailseg.inference.normalize import to_tensor

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not openvino_available(), reason="openvino not installed")]

NO_TORCH = "import sys; sys.modules['torch'] = None  # `import torch` fails from here on\n"

# The runner's own start path (runners/unet_runner.py): store entry -> engine, with the trial -> infer.
SERVE = NO_TORCH + """
import json, sys
from pathlib import Path
import numpy as np
import runners.unet_runner as unet_runner
from nailseg.images import pipeline

out = Path(sys.argv[1])
runner = unet_runner.UNetRunner.inner()  # the service's class, as BentoML's worker makes it
status = runner.status()
assert status.model_loaded, status.error
prep = runner.info.preprocessing
photos = sorted(Path(sys.argv[2]).glob("*.jpg"))
np.save(out, runner.infer(np.stack([pipeline.prepare_bytes(p.read_bytes(), prep, 10**7).model_input for p in photos])))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "torchvision", "nncf"} and sys.modules[m])
print(json.dumps({"precision": status.precision, "reason": status.precision_reason, "backend": status.backend,
                  "engine": type(runner.engine).__name__, "heavy": heavy}))
"""


def run_without_torch(code: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600)


def store_env(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True", **extra}


def torch_path_probabilities(home: Path, precision: str) -> np.ndarray:
    """The probabilities as served before the numpy path: the same IR, torch normalising, torch.sigmoid."""
    from nailseg.images import pipeline
    from nailseg.inference.openvino_session import OpenVinoBackend
    from nailseg.store.entries import require_stored
    from nailseg.model.spec import StoredModelInfo

    stored = require_stored()
    prep = StoredModelInfo.model_validate(stored.info.metadata).preprocessing
    run = OpenVinoBackend.from_ir(Path(stored.path_of("openvino")), precision).session()
    photos = sorted(EXAMPLES.glob("*.jpg"))
    x = np.stack([pipeline.prepare_bytes(p.read_bytes(), prep, 10**7).model_input for p in photos])
    return np.concatenate([torch.sigmoid(torch.from_numpy(run(to_tensor(x[i:i + 8], prep).numpy()))[:, 0]).numpy()
                           for i in range(0, len(x), 8)])


def test_the_cpu_runner_serves_the_ir_without_torch_with_the_torch_paths_probabilities(bundled_store, tmp_path,
                                                                                     monkeypatch):
    """auto measures int8 on this CPU (the bundled model passes its gate) and serves it; fp32 and bf16 when set;
    each with probabilities equal, bit for bit, to the torch-installed path's at the same precision."""
    monkeypatch.setenv("BENTOML_HOME", str(bundled_store))
    for precision in ["auto", "fp32", "bf16", "int8"]:
        env = store_env(bundled_store, UNET_INFERENCE_PRECISION_CACHE_DIR=str(tmp_path / "verdicts"),
                        UNET_MODEL_DEVICE="cpu", UNET_INFERENCE_PRECISION=precision)
        out = tmp_path / f"{precision}.npy"
        done = run_without_torch(SERVE, str(out), str(EXAMPLES), env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        served = json.loads(done.stdout.strip().splitlines()[-1])
        assert served["heavy"] == [] and served["backend"] == "openvino" and served["engine"] == "OpenVinoEngine"
        if precision == "auto":
            assert served["precision"] == "int8", served["reason"]
            assert served["reason"].startswith("auto: int8: on this CPU it agrees with fp32"), served["reason"]
        else:
            assert served["precision"] == precision
        expected = torch_path_probabilities(bundled_store, served["precision"])
        assert np.array_equal(np.load(out), expected), precision


REFUSE = NO_TORCH + """
import sys
from nailseg.config import load_settings
from nailseg.inference.build import engine_from_settings
from nailseg.store.load import load_stored

loaded = load_stored()
info = loaded.info
try:
    engine_from_settings(loaded.build_model, info.preprocessing, load_settings(), loaded.openvino_dir, info.int8_gate)
except RuntimeError as e:
    print(e)
    sys.exit(3)
"""


def test_an_entry_without_an_ir_is_refused_without_torch_in_one_line_saying_how_to_reimport(bundled_store, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(bundled_store, home, ignore=shutil.ignore_patterns("precision_trials"))
    for entry in (home / "models" / "unet").iterdir():
        if entry.is_dir():
            shutil.rmtree(entry / "openvino")  # as an import from before IRs were kept left it
    done = run_without_torch(REFUSE, env=store_env(home, UNET_MODEL_DEVICE="cpu"))
    assert done.returncode == 3, done.stderr[-3000:]
    line = done.stdout.strip()
    assert "\n" not in line and "no OpenVINO IR" in line and "python -m models_import --checkpoint" in line
    assert GPU_IMAGE in line


RUNNER = NO_TORCH + "import runners.unet_runner\n"


@pytest.mark.parametrize("setting, value, what", [("UNET_INFERENCE_BACKEND", "torch", "backend 'torch'"),
                                                  ("UNET_MODEL_DEVICE", "cuda", "device 'cuda'")])
def test_torch_settings_without_torch_are_refused_at_start_naming_the_gpu_image(bundled_store, setting, value, what):
    done = run_without_torch(RUNNER, env=store_env(bundled_store, **{setting: value}))
    assert done.returncode == 1, done.stderr[-3000:]
    line = done.stderr.strip().splitlines()[-1]
    assert line == (f"error: {what} needs torch, which this image does not have: use the {GPU_IMAGE} image "
                    "(or pip install torch)")


def test_bentoml_serve_without_torch_gives_the_torch_installed_servers_mask_pngs(bundled_store, tmp_path):
    """The whole process tree (API and runner) with `import torch` failing in every process: the same PNG
    bytes as a server that has torch, at the same precision."""
    blocked = tmp_path / "no-torch"
    blocked.mkdir()
    (blocked / "sitecustomize.py").write_text(NO_TORCH)
    photos = sorted(EXAMPLES.glob("*.jpg"))
    masks = {}
    for name, path in [("without torch", f"{blocked}{os.pathsep}{ROOT}"), ("with torch", str(ROOT))]:
        env = store_env(bundled_store, PYTHONPATH=path, UNET_MODEL_DEVICE="cpu", UNET_INFERENCE_PRECISION="int8")
        with serving(env) as server:
            assert server.get("/api/unet/model-info").json()["precision"] == "int8"
            masks[name] = [httpx.post(server.url + "/api/unet/mask", timeout=60,
                                      files={"image": (p.name, p.read_bytes(), "image/jpeg")}).content
                           for p in photos]
            if name == "without torch":
                assert "import of torch halted" not in server.log.read_text()  # nothing even tried
    assert all(m.startswith(b"\x89PNG") for m in masks["without torch"])
    assert masks["without torch"] == masks["with torch"]
