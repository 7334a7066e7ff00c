"""Training for "no nails here": the nail-free pictures it draws, and runs that stop and go on exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_synthetic_dataset

from training.negatives import NegativeSampler, nail_free_crop, photo_crop, synthetic
from training.train import TrainConfig, train


def test_synthetic_pictures_are_varied_rgb_images():
    rng = np.random.default_rng(0)
    pictures = [synthetic(rng, 64) for _ in range(40)]
    assert all(p.shape == (64, 64, 3) and p.dtype == np.uint8 for p in pictures)
    spreads = [float(p.reshape(-1, 3).std(axis=0).max()) for p in pictures]
    assert min(spreads) < 1.0 < 30.0 < max(spreads)  # flat colours and busy textures both drawn


def test_hand_photo_crops_hold_no_nail():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    mask = np.zeros((200, 200), np.uint8)
    mask[20:60, 20:60] = 1
    found = 0
    for _ in range(50):
        crop = nail_free_crop(rng, np.dstack([mask * 255] * 3).astype(np.uint8), mask, 32)
        if crop is not None:
            found += 1
            assert crop.shape == (32, 32, 3) and crop.max() == 0  # none of the nail's pixels
    assert found > 10
    assert nail_free_crop(rng, image, np.ones((200, 200), np.uint8), 32) is None  # all nail: no crop


def test_sampler_draws_every_source_it_has():
    rng = np.random.default_rng(2)
    empty = np.full((3, 32, 32, 3), 7, np.uint8)
    free = [np.full((80, 60, 3), 200, np.uint8)]
    sampler = NegativeSampler(rng, 32, empty, [], free)
    assert sampler.kinds == ["empty", "photo", "synthetic"]  # no hand photos: their share goes to the rest
    drawn = [sampler() for _ in range(60)]
    assert all(d.shape == (32, 32, 3) for d in drawn)
    assert any((d == 7).all() for d in drawn) and any((d == 200).all() for d in drawn)
    assert photo_crop(rng, free[0], 32).shape == (32, 32, 3)


def _config(tmp_path, data, **extra) -> TrainConfig:
    return TrainConfig(data=data, out=tmp_path / "run", base_channels=8, depth=2, image_size=64, epochs=2,
                       batch_size=4, lr=1e-2, bf16=False, negative_share=0.25, save_every=2, **extra)


@pytest.mark.slow
def test_a_stopped_run_resumed_ends_where_an_unbroken_one_does(tmp_path):
    torch.set_num_threads(1)  # the same order of float sums in both runs
    data = make_synthetic_dataset(tmp_path / "data", counts=(12, 4, 4))
    whole = train(_config(tmp_path / "whole", data))
    broken = _config(tmp_path / "broken", data, stop_after=3)
    train(broken)  # stops mid-epoch 1 (4 steps an epoch)
    assert (broken.out / "resume.pth").exists() and not (broken.out / "final_checkpoint.pth").exists()
    train(broken.model_copy(update={"stop_after": 2, "resume": True}))  # stops mid-epoch 2
    train(broken.model_copy(update={"stop_after": None, "resume": True}))
    a = torch.load(whole / "final_checkpoint.pth", weights_only=True)
    b = torch.load(broken.out / "final_checkpoint.pth", weights_only=True)
    for key, tensor in a["model_state_dict"].items():
        assert torch.equal(tensor, b["model_state_dict"][key]), key
    assert a["metrics"] == b["metrics"]
