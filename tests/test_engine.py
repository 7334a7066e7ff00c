"""The inference engine: buffers, batching, concurrency, and every fast path agreeing with fp32."""

from __future__ import annotations

import concurrent.futures

import numpy as np
import pytest
import torch
from conftest import example_photos, randomised_model, require_bundled

from nailseg.config import load_settings
from nailseg.inference.backends import TorchBackend, openvino_backend
from nailseg.inference.engine import InferenceEngine
from nailseg.inference.hardware import openvino_available, resolve_backend
from nailseg.inference.build import build_engine
from nailseg.inference.normalize import to_tensor
from nailseg.model.spec import Preprocessing
from nailseg.store.quantize import nncf_available
from training.data import read_mask
from training.evaluate import engine_for, predict_mask, score

PREP = Preprocessing(image_size=(32, 32))
CPU = torch.device("cpu")


def engine(backend=None, batch_size=4, slots=2) -> InferenceEngine:
    backend = backend or TorchBackend(randomised_model(), CPU, "fp32")
    return build_engine(backend, PREP, CPU, batch_size=batch_size, slots=slots)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_output_is_the_models_probability_for_every_image():
    e = engine()
    x = images(10)  # more than one batch: chunked through the same buffers
    prob = e.infer(x)
    assert prob.shape == (10, 32, 32) and prob.dtype == np.float32
    with torch.no_grad():
        expected = randomised_model()(to_tensor(x, PREP))[:, 0].numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-5)
    stats = e.utilisation()
    assert stats["images_run"] == 10 and stats["batches_run"] == 3 and stats["pool_capacity_images"] == 8
    assert stats["input_pool_utilization"] == 0 and 0 < stats["peak_pool_utilization"] <= 1


def test_concurrent_calls_get_their_own_results():
    e = engine(slots=2)
    batches = [images(3, seed) for seed in range(12)]
    serial = [e.infer(b) for b in batches]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        parallel = list(pool.map(e.infer, batches))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


def test_wrong_input_is_refused_and_a_stale_size_is_resized():
    with pytest.raises(ValueError, match="expected uint8"):
        engine().infer(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="expected uint8"):
        engine().infer(np.zeros((1, 32, 32), np.uint8))
    assert engine().infer(np.zeros((2, 16, 16, 3), np.uint8)).shape == (2, 32, 32)  # sized for an older model


FLIP_BACKENDS = ["torch"] + (["openvino"] if openvino_available() else [])


@pytest.mark.parametrize("backend", FLIP_BACKENDS)
def test_test_time_flip_averages_the_photo_and_its_mirror(backend):
    model = randomised_model()
    plain = engine().infer
    backend = TorchBackend(model, CPU, "fp32") if backend == "torch" else openvino_backend(model, (32, 32), "fp32", None)
    flip = build_engine(backend, PREP, CPU, batch_size=4, slots=2, test_time_flip=True)
    x = images(6)  # two batches through the same buffers
    expected = (plain(x) + plain(x[:, :, ::-1].copy())[:, :, ::-1]) / 2
    np.testing.assert_allclose(flip.infer(x), expected, atol=1e-4)
    # a mirrored photo gets the mirrored mask: left/right no longer changes the answer
    np.testing.assert_allclose(flip.infer(x[:, :, ::-1].copy()), flip.infer(x)[:, :, ::-1], atol=1e-4)
    assert flip.utilisation()["images_run"] == 18  # an image counts once, however many views it takes


def test_pool_is_capped_by_max_pool_size():
    backend = TorchBackend(randomised_model(), CPU, "fp32")
    e = build_engine(backend, PREP, CPU, batch_size=4, slots=10, max_pool_bytes=3 * 4 * 32 * 32 * 19)
    assert e.slot_count == 3
    with pytest.raises(ValueError, match="max_pool_size_gb"):
        build_engine(backend, PREP, CPU, batch_size=4, max_pool_bytes=100)


def settings_for(backend: str, precision: str):
    """Default settings with this path; OpenVINO runs on the CPU, PyTorch where ``auto`` puts it (a GPU if any)."""
    environ = {"UNET_MODEL_DEVICE": "cpu"} if backend == "openvino" else {}
    return load_settings(environ=environ).with_inference(backend=backend, precision=precision)


FAST_PATHS = [("torch", "bf16")] + ([("openvino", "fp32"), ("openvino", "bf16")] if openvino_available() else [])


@pytest.mark.parametrize("backend, precision", FAST_PATHS)
def test_fast_paths_give_the_fp32_masks_on_real_photos(backend, precision):
    """Whatever path the runner picks, its masks agree with plain PyTorch fp32 (IoU >= 0.99)."""
    reference = engine_for(require_bundled(), settings_for("torch", "fp32"))
    fast = engine_for(require_bundled(), settings_for(backend, precision))
    assert fast.backend.name == backend and fast.precision == precision
    inter = union = 0
    for photo, _ in example_photos():
        a = predict_mask(reference, photo.read_bytes(), 0.5, 10**7) > 0
        b = predict_mask(fast, photo.read_bytes(), 0.5, 10**7) > 0
        inter, union = inter + (a & b).sum(), union + (a | b).sum()
    assert inter / union >= 0.99


@pytest.mark.skipif(not (openvino_available() and nncf_available()), reason="openvino or nncf not installed")
def test_int8_loses_at_most_half_a_dice_point_on_real_photos():
    """int8 is opt-in and its masks differ a little from fp32's; what users rely on is Dice against the labels."""
    pooled = {}
    for backend, precision in [("torch", "fp32"), ("openvino", "int8")]:
        e = engine_for(require_bundled(), settings_for(backend, precision))
        assert e.precision == precision
        pooled[precision] = score([(predict_mask(e, photo.read_bytes(), 0.5, 10**7) > 0, read_mask(mask) > 0)
                                   for photo, mask in example_photos()]).pooled_dice
    assert pooled["int8"] >= pooled["fp32"] - 0.005


def test_int8_needs_the_openvino_cpu_path_and_its_imported_model():
    with pytest.raises(ValueError, match="OpenVINO CPU path"):
        resolve_backend("torch", CPU, "int8")
    if openvino_available():
        with pytest.raises(ValueError, match="re-import the checkpoint"):
            openvino_backend(randomised_model(), (32, 32), "int8", None)


@pytest.mark.skipif(not openvino_available(), reason="openvino not installed")
def test_openvino_matches_pytorch_on_a_random_model():
    model = randomised_model()
    x = images(5)
    ov = engine(openvino_backend(model, (32, 32), "fp32", None)).infer(x)
    np.testing.assert_allclose(ov, engine().infer(x), atol=1e-4)
