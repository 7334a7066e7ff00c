"""The CPU path's numpy pieces give the very bits torch gave: normalising, and the sigmoid (SLEEF's exponential)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nailseg.inference.normalize import normalize_into, to_tensor
from nailseg.inference.normalize_np import normalize_into_np, to_array
from nailseg.inference.sigmoid import sigmoid
from nailseg.model.spec import Preprocessing


def test_sigmoid_is_torch_sigmoid_bit_for_bit():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 6, 1 << 21), rng.uniform(-120, 120, 1 << 20),
                        np.float32([0, -0.0, 1e-30, -1e-30, 88.7, -88.7, 103.9, -103.9, 104.1, -104.1])]).astype(np.float32)
    x = x[: len(x) // 32 * 32]  # ATen's vector loop covers whole vectors (a model's maps always are)
    assert np.array_equal(sigmoid(x), torch.sigmoid(torch.from_numpy(x)).numpy())


@pytest.mark.parametrize("prep", [Preprocessing(image_size=(16, 16)),
                                  Preprocessing(image_size=(16, 16), mean=(0.485, 0.456, 0.406),
                                                std=(0.229, 0.224, 0.225))])
def test_numpy_normalising_gives_the_torch_bits(prep):
    every_value = np.arange(256 * 3, dtype=np.int64).reshape(1, 16, 16, 3) % 256
    x = np.concatenate([every_value.astype(np.uint8),
                        np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)])
    assert np.array_equal(to_array(x, prep), to_tensor(x, prep).numpy())
    out = np.empty((4, 3, 16, 16), np.float32)
    ref = torch.empty((4, 3, 16, 16))
    assert np.array_equal(normalize_into_np(out, x, prep), normalize_into(ref, torch.from_numpy(x), prep).numpy())
