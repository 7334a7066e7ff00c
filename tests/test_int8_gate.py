"""int8 at import: the gate that keeps a badly quantizing model off ``precision: auto``, and how ``auto``
decides on the serving CPU itself (the start-up trial: real on this CPU, and with flags played by replacing
hardware.cpu_flags and timings by made-up figures), and caches its verdict."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import EXAMPLES, ROOT, randomised_model, require_bundled, users_checkpoint

from nailseg.config import load_settings
from nailseg.inference import hardware, trial
from nailseg.inference.agreement import Agreement
from nailseg.inference.hardware import openvino_available
from nailseg.inference.ir import GATE_PHOTOS, INT8_FAILED_XML, INT8_XML
from nailseg.inference.build import engine_from_settings
from nailseg.inference.precision import resolve_precision
from nailseg.model.checkpoint import read_checkpoint
from nailseg.model.spec import Int8Gate, Preprocessing
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


def speeds(**figures: tuple[float, float]) -> dict[str, trial.Speed]:
    return {p: trial.Speed(batch_1=b1, batch_n=bn) for p, (b1, bn) in figures.items()}


AGREES = Agreement(mask_iou=0.98, mean_abs_prob_diff=0.002, inputs=16)
DISAGREES = Agreement(mask_iou=0.91, mean_abs_prob_diff=0.002, inputs=16)


def test_int8_where_this_cpu_shows_it_agrees_and_is_faster_avx2_included():
    """The AVX2 machines' case (no VNNI, no AMX, no bf16): int8 measured 1.6x fp32 and agreeing gets served."""
    precision, reason = trial.decide(speeds(int8=(33.0, 37.0), fp32=(21.0, 23.0)), AGREES, PASSED, ["fp32"], 8)
    assert precision == "int8"
    assert reason == ("auto: int8: on this CPU it agrees with fp32 (IoU 0.980 >= 0.97, mean |dp| 0.0020 <= 0.01 on "
                      "16 gate inputs), and it is the fastest path here (int8 33.0/37.0, fp32 21.0/23.0 img/s at "
                      "batch 1/8)")
    precision, reason = trial.decide(speeds(int8=(74, 108), bf16=(52, 60), fp32=(29, 32)), AGREES, PASSED,
                                     ["fp32", "bf16"], 8)
    assert precision == "int8" and "(int8 74.0/108.0, bf16 52.0/60.0, fp32 29.0/32.0 img/s at batch 1/8)" in reason


def test_the_fastest_float_path_where_int8_disagrees_on_this_cpu_or_is_slower():
    precision, reason = trial.decide(speeds(int8=(74, 108), bf16=(52, 60), fp32=(29, 32)), DISAGREES, PASSED,
                                     ["fp32", "bf16"], 8)
    assert precision == "bf16"
    assert reason.startswith("auto: bf16, the fastest float path here; not int8: on this CPU it disagrees with fp32 "
                             "(IoU 0.910 < 0.97")
    precision, reason = trial.decide(speeds(int8=(20, 22), fp32=(21, 23)), AGREES, PASSED, ["fp32"], 8)
    assert precision == "fp32" and "it agrees with fp32" in reason and "it is slower here than fp32" in reason
    # faster at batch 1 but slower in full batches: both count the same (time per image, harmonic mean)
    precision, _ = trial.decide(speeds(int8=(40, 20), bf16=(30, 30), fp32=(20, 20)), AGREES, PASSED,
                                ["fp32", "bf16"], 8)
    assert precision == "bf16"
    too_far = Agreement(mask_iou=0.99, mean_abs_prob_diff=0.02, inputs=16)  # the probability bound counts too
    assert trial.decide(speeds(int8=(40, 40), fp32=(20, 20)), too_far, PASSED, ["fp32"], 8)[0] == "fp32"


def test_a_model_without_gate_photos_is_judged_on_its_import_gate_and_the_timings():
    precision, reason = trial.decide(speeds(int8=(40, 40), fp32=(20, 20)), None, PASSED, ["fp32"], 8)
    assert precision == "int8"
    assert "its import gate passed (IoU 0.981 >= 0.97" in reason and "not checked on this CPU" in reason
    assert "re-import it to check" in reason


@pytest.fixture()
def no_trial(monkeypatch):
    """Fail the test if the start-up trial runs."""
    def refuse(*args, **kwargs):
        raise AssertionError("the start-up trial ran")
    monkeypatch.setattr(trial, "run_trial", refuse)


@pytest.mark.parametrize("backend, gate, why", [
    ("auto", FAILED, "failed the int8 gate (IoU 0.025 < 0.97"),
    ("auto", None, "no gated int8 IR"),
    ("torch", PASSED, "int8 needs the OpenVINO backend"),
])
def test_no_trial_where_int8_is_no_candidate(cpu, no_trial, tmp_path, backend, gate, why):
    (tmp_path / INT8_XML).touch()
    cpu()  # AVX2 only
    choice, compiled = trial.auto_cpu(None, tmp_path, gate, backend=backend, batch_size=8,
                                      cache_dir=tmp_path, identity=("sha", "unet:a"))
    assert choice.precision == "fp32" and why in choice.reason and compiled is None
    assert choice.reason.startswith("auto: CPU has no bf16 (AVX512-BF16/AMX); not int8: ")
    cpu("avx512_bf16")  # bf16 as before where int8 is not a candidate
    choice, _ = trial.auto_cpu(None, tmp_path, gate, backend=backend, batch_size=8, identity=("sha", "unet:a"))
    assert choice.precision == "bf16" and choice.reason.startswith("auto: CPU has avx512_bf16; not int8: ")
    assert not list(tmp_path.glob("*.json"))  # nothing measured, nothing cached


def test_no_trial_without_the_int8_ir_or_any_ir(cpu, no_trial, tmp_path):
    cpu()
    choice, _ = trial.auto_cpu(None, tmp_path, PASSED, batch_size=8)
    assert choice.precision == "fp32" and f"no {INT8_XML}" in choice.reason
    choice, _ = trial.auto_cpu(None, None, PASSED, batch_size=8)
    assert choice.precision == "fp32" and "has no OpenVINO IR" in choice.reason


@pytest.fixture()
def fake_trial(monkeypatch):
    """A start-up trial that measures nothing: returns int8 and counts its runs."""
    runs = []

    def run(prep, ir_dir, gate, batch_size):
        runs.append(batch_size)
        return trial.Verdict(precision="int8", reason="auto: int8: measured", batch_size=batch_size,
                             speeds=speeds(int8=(2, 2), fp32=(1, 1)), trial_seconds=0.1,
                             measured_at="2026-12-01T00:00:00+00:00"), {"int8": "compiled int8"}
    monkeypatch.setattr(trial, "run_trial", run)
    return runs


@pytest.mark.skipif(not openvino_available(), reason="the cache key holds the OpenVINO version")
def test_the_verdict_is_cached_per_model_cpu_and_batch_size(cpu, fake_trial, tmp_path):
    (tmp_path / INT8_XML).touch()
    cache = tmp_path / "cache"

    def choose(identity=("sha-a", "unet:a"), batch_size=8):
        return trial.auto_cpu(None, tmp_path, PASSED, batch_size=batch_size, cache_dir=cache, identity=identity)

    cpu("avx512_vnni")
    choice, compiled = choose()
    assert (choice.precision, choice.reason, compiled) == ("int8", "auto: int8: measured", "compiled int8")
    assert len(fake_trial) == 1 and len(list(cache.glob("*.json"))) == 1
    choice, compiled = choose()  # a restart, or a second replica on this CPU
    assert choice.precision == "int8" and compiled is None and len(fake_trial) == 1
    assert choice.reason == "auto: int8: measured; cached verdict, measured 2026-12-01T00:00:00+00:00"
    choose(identity=("sha-b", "unet:b"))  # a reload of another model measures again
    choose(batch_size=16)
    cpu("avx512_vnni", "amx_int8")  # another CPU (flags)
    choose()
    assert len(fake_trial) == 4 and len(list(cache.glob("*.json"))) == 4
    choose(identity=None)  # no identity: nothing to key a cache on
    assert len(fake_trial) == 5
    key = trial.cache_key(("sha-a", "unet:a"), 8)
    assert {"model_sha256", "model_tag", "cpu", "cpu_flags_sha256", "cpus", "openvino", "batch_size"} <= set(key)


@pytest.mark.skipif(not openvino_available(), reason="the cache key holds the OpenVINO version")
def test_a_cache_that_cannot_be_written_or_read_only_costs_a_new_trial(cpu, fake_trial, tmp_path, caplog):
    (tmp_path / INT8_XML).touch()
    (tmp_path / "a-file").write_text("")
    cpu()
    with caplog.at_level(logging.WARNING, logger="nailseg.inference.trial"):
        for _ in range(2):  # a read-only store or home: serves, logs, measures again next time
            choice, _ = trial.auto_cpu(None, tmp_path, PASSED, batch_size=8, cache_dir=tmp_path / "a-file" / "x",
                                       identity=("sha", "unet:a"))
            assert choice.precision == "int8"
    assert len(fake_trial) == 2 and "cannot cache the precision verdict" in caplog.text
    cache = tmp_path / "cache"
    trial.auto_cpu(None, tmp_path, PASSED, batch_size=8, cache_dir=cache, identity=("sha", "unet:a"))
    (cached,) = cache.glob("*.json")
    for garbage in ("{not json", '{"key": 1}', json.dumps({"key": json.loads(cached.read_text())["key"],
                                                           "verdict": {"precision": "fp64"}})):
        cached.write_text(garbage)
        choice, _ = trial.auto_cpu(None, tmp_path, PASSED, batch_size=8, cache_dir=cache,
                                   identity=("sha", "unet:a"))
        assert choice.precision == "int8" and "cached" not in choice.reason
    assert len(fake_trial) == 6


def test_forced_precisions_run_no_trial(no_trial):
    model = randomised_model()
    settings = load_settings(environ={"UNET_MODEL_DEVICE": "cpu"})
    for precision in ["fp32", "bf16"]:
        e = engine_from_settings(model, Preprocessing(image_size=(32, 32)),
                                 settings.with_inference(precision=precision))
        assert e.precision == precision and e.precision_reason == f"{precision}: set in config"


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


@pytest.mark.slow  # a quantization and a store import
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
    auto = engine_from_settings(model, prep, settings, ir_dir, gate)
    assert auto.precision == "fp32" and "failed the int8 gate" in auto.precision_reason
    forced = engine_from_settings(model, prep, settings.with_inference(precision="int8"), ir_dir, gate)
    assert forced.precision == "int8" and forced.backend.name == "openvino"
    assert forced.infer(np.zeros((1, 64, 64, 3), np.uint8)).shape == (1, 64, 64)

    # The same int8 model as if its gate had passed elsewhere (say, on the import machine): on this CPU the
    # start-up trial checks it again on the gate's photos, kept with the model, and keeps to fp32.
    assert np.load(ir_dir / GATE_PHOTOS).shape == (1, 64, 64, 3)
    elsewhere = tmp_path / "passed-elsewhere"
    shutil.copytree(ir_dir, elsewhere)
    for suffix in (".xml", ".bin"):
        (elsewhere / INT8_FAILED_XML).with_suffix(suffix).rename((elsewhere / INT8_XML).with_suffix(suffix))
    auto = engine_from_settings(model, prep, settings, elsewhere, gate.model_copy(update={"passed": True}))
    assert auto.precision == "fp32"
    assert "not int8: on this CPU it disagrees with fp32 (IoU 0.0" in auto.precision_reason
    assert "on 4 gate inputs" in auto.precision_reason and "img/s at batch 1/8" in auto.precision_reason


def stored_bundled(home: Path) -> tuple[Path, Int8Gate]:
    """The IR folder and int8 gate of the bundled model's store entry under ``home``."""
    (ir_dir,) = (home / "models" / "unet").glob("*/openvino")
    meta = yaml.safe_load((ir_dir.parent / "model.yaml").read_text())["metadata"]
    return ir_dir, Int8Gate.model_validate(meta["int8_gate"])


@needs_nncf
def test_auto_decides_on_this_cpu_from_what_it_measures_and_caches_it(bundled_store, tmp_path, monkeypatch):
    """The real path: the bundled model's import kept its gate photos; on this CPU the trial checks int8
    against fp32 on them, times every candidate, serves what the figures say, and a restart reads the verdict."""
    ir_dir, gate = stored_bundled(bundled_store)
    assert gate.passed and np.load(ir_dir / GATE_PHOTOS).shape[0] * 4 == gate.inputs
    ckpt = read_checkpoint(require_bundled())
    settings = load_settings(environ={"UNET_MODEL_DEVICE": "cpu",
                                      "UNET_INFERENCE_PRECISION_CACHE_DIR": str(tmp_path / "cache")})
    first = engine_from_settings(ckpt.build_model(), ckpt.preprocessing, settings, ir_dir, gate,
                                          identity=(ckpt.sha256, "unet:test"))
    (cached,) = (tmp_path / "cache").glob("*.json")
    verdict = trial.Verdict.model_validate(json.loads(cached.read_text())["verdict"])
    floats = ["fp32"] + (["bf16"] if hardware.cpu_bf16_flags() else [])
    assert set(verdict.speeds) == {"int8", *floats}
    agrees = verdict.int8_mask_iou >= gate.min_mask_iou and verdict.int8_mean_abs_prob_diff <= gate.max_mean_abs_prob_diff
    fastest_float = max(floats, key=lambda p: verdict.speeds[p].images_per_s)
    int8_fastest = verdict.speeds["int8"].images_per_s > verdict.speeds[fastest_float].images_per_s
    assert first.precision == verdict.precision == ("int8" if agrees and int8_fastest else fastest_float)
    assert first.backend.name == "openvino" and first.precision_reason == verdict.reason
    assert f"with fp32 (IoU {verdict.int8_mask_iou:.3f}" in verdict.reason and "on 16 gate inputs" in verdict.reason
    for p in verdict.speeds:
        assert f"{p} {verdict.speeds[p].batch_1:.1f}/{verdict.speeds[p].batch_n:.1f}" in verdict.reason
    assert f"img/s at batch 1/{settings.inference.batch_size}" in verdict.reason and "; trial " in verdict.reason
    assert first.infer(np.zeros((3, *ckpt.preprocessing.image_size, 3), np.uint8)).shape[0] == 3

    monkeypatch.setattr(trial, "run_trial", None)  # a restart: the cached verdict, no trial
    again = engine_from_settings(ckpt.build_model(), ckpt.preprocessing, settings, ir_dir, gate,
                                          identity=(ckpt.sha256, "unet:test"))
    assert again.precision == first.precision and again.backend.name == "openvino"
    assert again.precision_reason == f"{verdict.reason}; cached verdict, measured {verdict.measured_at}"


@needs_nncf
def test_a_model_imported_before_gate_photos_were_kept_still_loads(bundled_store, tmp_path):
    ir_dir, gate = stored_bundled(bundled_store)
    old = tmp_path / "openvino"
    shutil.copytree(ir_dir, old)
    (old / GATE_PHOTOS).unlink()
    ckpt = read_checkpoint(require_bundled())
    settings = load_settings(environ={"UNET_MODEL_DEVICE": "cpu"})
    e = engine_from_settings(ckpt.build_model(), ckpt.preprocessing, settings, old, gate)
    assert e.precision in ("int8", "bf16", "fp32") and "not checked on this CPU" in e.precision_reason
    assert "img/s at batch 1/8" in e.precision_reason
    assert e.infer(np.zeros((1, *ckpt.preprocessing.image_size, 3), np.uint8)).shape[0] == 1
