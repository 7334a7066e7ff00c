"""Training writes the users' checkpoint format and learns; evaluation's numbers are exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import BUNDLED, BUNDLED_MIN_TEST_DICE, BUNDLED_MIN_TEST_DICE_FLIP, DATA

from nailseg.config import load_settings
from nailseg.model.checkpoint import find_checkpoint, read_checkpoint
from training.evaluate import engine_for, evaluate, score


def test_a_few_training_steps_lower_the_loss_and_write_the_users_format(trained_run):
    history = json.loads((trained_run / "checkpoint_metadata.json").read_text())["epochs"]
    losses = [e["train_loss"] for e in history]
    assert len(losses) == 5 and np.mean(losses[-2:]) < losses[0] * 0.8
    names = {p.name for p in trained_run.iterdir()}
    assert {"best_model.pth", "final_checkpoint.pth", "checkpoint_metadata.json"} <= names
    assert len([n for n in names if n.startswith("checkpoint_epoch_")]) == 3  # the last few
    raw = torch.load(trained_run / "final_checkpoint.pth", weights_only=True)
    assert {"model_state_dict", "config", "model_info", "metrics", "epoch", "timestamp", "optimizer_state_dict",
            "scheduler_state_dict"} <= set(raw)
    for key in ("base_channels", "depth", "attention", "dropout", "input_channels", "output_channels",
                "batch_norm", "image_size", "normalize_images"):
        assert key in raw["config"]
    assert raw["model_info"]["model_name"] == "AttentionUNet" and raw["model_info"]["channels_per_level"] == [8, 16, 32]
    assert find_checkpoint(trained_run).name == "best_model.pth"


def test_trained_checkpoint_segments_its_data(trained_run):
    engine = engine_for(trained_run / "best_model.pth", load_settings(environ={}))
    scores = evaluate(engine, trained_run.parent / "data", "test", 0.5, 10**7)
    assert scores.images == 4 and scores.pooled_dice > 0.5


def test_scores_are_exact_on_a_known_case():
    pred = np.zeros((4, 4), bool)
    true = np.zeros((4, 4), bool)
    pred[0, :3] = True  # 3 predicted
    true[0, 1:] = True  # 3 true, 2 overlap: tp 2, fp 1, fn 1
    empty = np.zeros((2, 2), bool)
    s = score([(pred, true), (empty, empty)])
    assert s.images == 2
    assert s.pooled_dice == pytest.approx(4 / 6) and s.pooled_iou == pytest.approx(2 / 4)
    assert s.precision == pytest.approx(2 / 3) and s.recall == pytest.approx(2 / 3)
    assert s.mean_dice == pytest.approx((4 / 6 + 1) / 2) and s.mean_iou == pytest.approx((0.5 + 1) / 2)


@pytest.mark.slow  # the whole test split, twice
@pytest.mark.skipif(not DATA.exists(), reason=f"shared data set not at {DATA}")
@pytest.mark.parametrize("flip, floor", [(False, BUNDLED_MIN_TEST_DICE), (True, BUNDLED_MIN_TEST_DICE_FLIP)])
def test_bundled_model_on_the_real_test_split(flip, floor):
    engine = engine_for(BUNDLED, load_settings(environ={}).with_inference(test_time_flip=flip))
    scores = evaluate(engine, DATA, "test", 0.5, 10**8)
    assert scores.pooled_dice >= floor
    assert read_checkpoint(BUNDLED).preprocessing.scale_only
