"""The model matches the users' checkpoint format; every layout they have loads, safely."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
from conftest import TINY, randomised_model, users_checkpoint

from nailseg.model.checkpoint import CheckpointError, find_checkpoint, read_checkpoint
from nailseg.model.spec import PRESETS, Architecture
from nailseg.model.unet import AttentionUNet, parameter_count


def test_presets_have_the_documented_parameter_counts():
    assert parameter_count(AttentionUNet(PRESETS["lightweight"])) == 1_981_114
    assert parameter_count(AttentionUNet(PRESETS["standard"])) == 31_909_485
    assert PRESETS["deep"] == Architecture(base_channels=64, depth=5)


def test_state_dict_names_follow_the_format():
    keys = set(AttentionUNet(TINY).state_dict())
    for name in ["encoder_blocks.0.conv1.block.0.weight", "encoder_blocks.0.conv1.block.1.running_var",
                 "encoder_blocks.2.conv2.block.1.num_batches_tracked", "attention_gates.0.gate_conv.0.weight",
                 "attention_gates.1.input_conv.1.weight", "attention_gates.0.attention_conv.1.bias",
                 "attention_gates.0.attention_conv.2.running_mean", "decoder_blocks.1.conv2.block.0.weight",
                 "final_conv.weight", "final_conv.bias"]:
        assert name in keys
    no_bn = set(AttentionUNet(Architecture(base_channels=4, depth=2, batch_norm=False)).state_dict())
    assert "encoder_blocks.0.conv1.block.0.bias" in no_bn and "encoder_blocks.0.conv1.block.1.weight" not in no_bn


def test_forward_is_a_probability_with_sigmoid_applied_once():
    model = randomised_model()
    x = torch.rand(2, 3, 48, 40)
    with torch.no_grad():
        prob, logits = model(x), model.forward_logits(x)
    assert prob.shape == (2, 1, 48, 40)
    torch.testing.assert_close(prob, torch.sigmoid(logits))


def test_users_checkpoint_loads_without_renaming_and_gives_the_same_probabilities(tiny_checkpoint):
    original = randomised_model()
    ckpt = read_checkpoint(tiny_checkpoint)
    assert ckpt.architecture == TINY and ckpt.architecture_source == "config"
    assert ckpt.preprocessing.image_size == (64, 64) and ckpt.preprocessing.scale_only  # normalize_images: /255
    assert ckpt.training["epoch"] == 7
    loaded = ckpt.build_model()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), original(x))
        assert not torch.allclose(AttentionUNet(TINY).eval()(x), original(x))  # the BN statistics matter


@pytest.mark.parametrize("layout", ["bare", "state_dict", "lightning", "dataparallel"])
def test_other_layouts_load_and_architecture_is_read_from_tensor_shapes(tmp_path, layout):
    model = randomised_model(Architecture(base_channels=8, depth=3, attention=False))
    sd = model.state_dict()
    payload = {
        "bare": sd,
        "state_dict": {"state_dict": sd, "epoch": 3},
        "lightning": {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3},
        "dataparallel": {"model_state_dict": {f"module.{k}": v for k, v in sd.items()}},
    }[layout]
    path = tmp_path / ("model.ckpt" if layout == "lightning" else "model.pt")
    torch.save(payload, path)
    ckpt = read_checkpoint(path)
    assert ckpt.architecture == Architecture(base_channels=8, depth=3, attention=False)
    assert ckpt.architecture_source == "tensor shapes"
    assert ckpt.preprocessing is None  # the file does not say: config.yaml decides
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.build_model()(x), model(x))


def test_model_info_is_used_when_config_is_missing(tmp_path):
    model = randomised_model()
    payload = users_checkpoint(model)
    del payload["config"]
    torch.save(payload, tmp_path / "a.pth")
    ckpt = read_checkpoint(tmp_path / "a.pth")
    assert ckpt.architecture_source == "model_info" and ckpt.architecture == TINY


def test_checkpoint_needing_pickled_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"model_state_dict": randomised_model().state_dict(), "extra": Payload()}, path)
    with pytest.raises(CheckpointError, match="refused: the file needs pickled Python code") as err:
        read_checkpoint(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("content, problem", [
    (b"not a checkpoint at all", "corrupt or not a PyTorch checkpoint"),
    (None, "corrupt or not a PyTorch checkpoint"),  # truncated
])
def test_corrupt_checkpoints_give_one_clear_line(tmp_path, tiny_checkpoint, content, problem):
    path = tmp_path / "broken.pth"
    path.write_bytes(content if content is not None else tiny_checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    assert str(err.value).startswith(f"{path}: {problem}") and "\n" not in str(err.value)


def test_mismatched_weights_name_the_file(tmp_path):
    payload = users_checkpoint(randomised_model())
    payload["config"]["base_channels"] = 8  # config disagrees with the tensors
    torch.save(payload, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match=r"m\.pth: weights do not match"):
        read_checkpoint(tmp_path / "m.pth").build_model()


def test_missing_file_and_empty_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        find_checkpoint(tmp_path)


def test_directory_discovery_prefers_best_then_final_then_newest(tmp_path):
    def touch(name: str, age: float = 0):
        p = tmp_path / name
        p.write_bytes(b"x")
        os.utime(p, (time.time() - age, time.time() - age))
        return p

    touch("checkpoint_epoch_001_20250101_000000.pth")
    newest = touch("checkpoint_epoch_002_20250102_000000.pth", age=100)  # older mtime, newer stamp
    (tmp_path / "checkpoint_metadata.json").write_text(json.dumps({}))
    assert find_checkpoint(tmp_path) == newest
    final = touch("final_checkpoint.pth")
    assert find_checkpoint(tmp_path) == final
    best = touch("best.ckpt", age=1000)
    assert find_checkpoint(tmp_path) == best
    assert find_checkpoint(tmp_path) != final  # the old server's mistake
