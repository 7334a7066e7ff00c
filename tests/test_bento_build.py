"""`bentoml build` packs a Bento (code, config, model) and a Dockerfile for a lean, consistent image,
without network locking. (`make container-test` builds and runs that image: tests/test_container.py.)"""

from __future__ import annotations

import pytest

import os
import re
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from conftest import ROOT, randomised_model, users_checkpoint

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def test_bentoml_build_packs_the_service_and_model(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "home"), "BENTOML_DO_NOT_TRACK": "True"}
    ckpt = tmp_path / "best_model.pth"
    torch.save(users_checkpoint(randomised_model()), ckpt)
    imported = subprocess.run([sys.executable, "-m", "models_import", "--checkpoint", str(ckpt)], cwd=ROOT,
                              env=env, check=True, capture_output=True, text=True).stdout.split()[1].rstrip(":")
    out = subprocess.run([str(BIN / "bentoml"), "build", "--output", "tag"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    tag = out.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    bento = tmp_path / "home" / "bentos" / name / version
    manifest = yaml.safe_load((bento / "bento.yaml").read_text())
    assert manifest["service"] == "service:UNetAPI"
    services = {s["name"]: s for s in manifest["services"]}
    assert set(services) == {"unet_api", "unet_runner"} and manifest["entry_service"] == "unet_api"
    assert services["unet_api"]["dependencies"] == [{"service": "unet_runner"}]
    (model,) = services["unet_runner"]["models"]  # containerize packs it from the store
    assert model["tag"] == imported
    for path in ["service.py", "config.yaml", "nailseg/inference/engine.py", "runners/unet_runner.py", "models_import/__main__.py"]:
        assert (bento / "src" / path).exists(), path
    assert not (bento / "src" / "tests").exists() and not (bento / "src" / "runs").exists()
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    # One CUDA stack: a plain Python base; the torch wheel brings its own CUDA libraries.
    base = yaml.safe_load((ROOT / "bentofile.yaml").read_text())["docker"]["base_image"]
    assert re.search(rf"^FROM {re.escape(base)} ", dockerfile, re.M) and "nvidia/cuda" not in dockerfile
    # The image's server (the entrypoint's `bentoml serve`, which reads BENTOML_PORT) listens on a declared port.
    port = re.search(r"^ARG BENTOML_PORT=(\d+)$", dockerfile, re.M)
    assert port and "ENV BENTOML_PORT=$BENTOML_PORT" in dockerfile
    assert port.group(1) in re.findall(r"^EXPOSE (\d+)$", dockerfile, re.M)
    assert "BENTOML_DO_NOT_TRACK" in dockerfile
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "torch==2.14.1" in requirements and "bentoml==1.4.40" in requirements
    for extra in ("nncf", "tqdm", "matplotlib", "pytest"):  # import, training, benchmark, tests: not served
        assert not re.search(rf"^{extra}\b", requirements, re.M), extra

def test_serve_without_a_model_says_how_to_get_one(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "empty"), "BENTOML_DO_NOT_TRACK": "True"}
    out = subprocess.run([str(BIN / "bentoml"), "serve", ".", "--port", "0"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "import a checkpoint first: python -m models_import" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
