"""int8 at import: the gate that keeps a badly quantizing model off ``precision: auto``, and how ``auto``
picks a precision per CPU (flags played by replacing hardware.cpu_flags)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import EXAMPLES, ROOT, require_bundled, users_checkpoint

from nailseg.config import load_settings
from nailseg.inference import hardware
from nailseg.inference.backends import INT8_FAILED_XML, INT8_XML, openvino_available
from nailseg.inference.engine import InferenceEngine
from nailseg.inference.precision import resolve_precision
from nailseg.model.checkpoint import read_checkpoint
from nailseg.model.spec import Int8Gate
from nailseg.store.quantize import nncf_available

CPU = torch.device("cpu")
PASSED = Int8Gate(passed=True, mask_iou=0.981, mean_abs_prob_diff=0.0016, inputs=16, calibration_images="examples")
FAILED = Int8Gate(passed=False, mask_iou=0.025, mean_abs_prob_diff=0.144, inputs=4, calibration_images="x")
needs_nncf = pytest.mark.skipif(not (openvino_available() and nncf_available()), reason="openvino or nncf missing")


@pytest.fixture()
def cpu(monkeypatch):
    """Play a CPU with the given /proc/cpuinfo flags."""
    def play(*flags: str) -> None:
        monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", *flags}))
    return play


@pytest.mark.skipif(not openvino_available(), reason="int8 is an OpenVINO path")
@pytest.mark.parametrize("flag", ["avx512_vnni", "avx_vnni", "amx_int8"])
def test_auto_serves_int8_on_cpus_with_int8_dot_products_when_the_gate_passed(cpu, flag):
    cpu(flag)
    choice = resolve_precision("auto", CPU, int8_gate=PASSED)
    assert choice.precision == "int8"
    assert choice.reason == f"auto: CPU has {flag} and the int8 gate passed (IoU 0.981)"


def test_auto_does_not_serve_int8_without_the_instructions_or_a_passed_gate(cpu):
    cpu()  # AVX2 only, like the development machine
    choice = resolve_precision("auto", CPU, int8_gate=PASSED)
    assert choice.precision == "fp32" and "no int8 dot products" in choice.reason
    cpu("avx512_vnni")
    for gate, why in [(FAILED, "failed the int8 gate (IoU 0.025 < 0.97"), (None, "no gated int8 IR")]:
        choice = resolve_precision("auto", CPU, int8_gate=gate)
        assert choice.precision == "fp32" and why in choice.reason
    assert resolve_precision("auto", CPU, backend="torch", int8_gate=PASSED).precision == "fp32"
    cpu("avx512_vnni", "avx512_bf16")  # bf16 as before where int8 is not chosen
    choice = resolve_precision("auto", CPU, int8_gate=FAILED)
    assert choice.precision == "bf16" and choice.reason.startswith("auto: CPU has avx512_bf16; not int8: the model failed")


def test_forced_precisions_are_served_as_set(cpu, caplog):
    cpu("avx512_vnni")
    assert resolve_precision("fp32", CPU, int8_gate=PASSED) == resolve_precision("fp32", CPU)
    assert resolve_precision("bf16", CPU, int8_gate=PASSED).reason == "bf16: set in config"
    with caplog.at_level(logging.WARNING, logger="nailseg.precision"):
        choice = resolve_precision("int8", CPU, int8_gate=FAILED)
    assert choice.precision == "int8" and "failed the int8 gate" in choice.reason
    assert "masks may differ from fp32" in caplog.text
    with pytest.raises(ValueError, match="fp16 is for CUDA"):
        resolve_precision("fp16", CPU)


def badly_quantizing_bundled_model():
    """The bundled model plus one channel that is 10,000 everywhere and that nothing reads: the same
    fp32 output, but the per-tensor int8 scale of the next layer's input rounds every real feature to 0."""
    ckpt = read_checkpoint(require_bundled())
    model = ckpt.build_model()
    with torch.no_grad():
        bn = model.encoder_blocks[0].conv1.block[1]
        bn.weight[0], bn.bias[0] = 0.0, 1e4
        model.encoder_blocks[0].conv2.block[0].weight[:, 0] = 0.0
    return ckpt, model


@needs_nncf
def test_import_rejects_a_model_that_quantizes_badly_and_forced_int8_still_serves_it(tmp_path, cpu):
    """(That the gate accepts the bundled model is checked on the real import in test_e2e_service.py.)"""
    ckpt, model = badly_quantizing_bundled_model()
    path, photos = tmp_path / "bad.pth", tmp_path / "calibration"
    torch.save(users_checkpoint(model, image_size=(64, 64)), path)  # small input and one photo: a quick import
    photos.mkdir()
    shutil.copy(EXAMPLES / "nails_01.jpg", photos)
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "home"), "BENTOML_DO_NOT_TRACK": "True"}
    out = subprocess.run([sys.executable, "-m", "models_import", "--checkpoint", str(path), "--calibration-images",
                          str(photos)], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    int8_lines = [line for line in out.splitlines() if line.startswith("int8:")]
    assert len(int8_lines) == 1 and "gate FAILED" in int8_lines[0] and "no int8 model kept" in int8_lines[0]
    (ir_dir,) = (tmp_path / "home" / "models" / "unet").glob("*/openvino")
    assert not (ir_dir / INT8_XML).exists() and (ir_dir / INT8_FAILED_XML).exists()
    gate = Int8Gate.model_validate(yaml.safe_load((ir_dir.parent / "model.yaml").read_text())["metadata"]["int8_gate"])
    assert not gate.passed and gate.mask_iou < 0.5 and gate.inputs == 4

    cpu("avx512_vnni")  # even where int8 would pay, auto keeps to fp32; a forced int8 gets the failed model
    prep = ckpt.preprocessing.model_copy(update={"image_size": (64, 64)})
    settings = load_settings(environ={"UNET_MODEL_DEVICE": "cpu"})
    auto = InferenceEngine.from_settings(model, prep, settings, ir_dir, gate)
    assert auto.precision == "fp32" and "failed the int8 gate" in auto.precision_reason
    forced = InferenceEngine.from_settings(model, prep, settings.with_inference(precision="int8"), ir_dir, gate)
    assert forced.precision == "int8" and forced.backend.name == "openvino"
    assert forced.infer(np.zeros((1, 64, 64, 3), np.uint8)).shape == (1, 64, 64)
