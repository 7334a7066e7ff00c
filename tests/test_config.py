"""config.yaml and UNET_<SECTION>_<KEY> overrides."""

from __future__ import annotations

import pytest

from nailseg.config import ConfigError, load_settings


def test_shipped_config_is_valid_and_has_the_guides_keys():
    s = load_settings(environ={})
    assert s.model.device == "auto" and s.model.fallback_to_cpu is True
    assert s.preprocessing.image_size == (256, 256)
    assert s.inference.batch_size == 8 and s.inference.threshold == 0.5
    assert s.memory.max_pool_size_gb == 4 and s.health.health_check_interval == 30
    assert s.model.checkpoint_dir.is_absolute()


def test_environment_variables_override_as_the_guide_names_them():
    s = load_settings(environ={"UNET_MODEL_DEVICE": "cuda", "UNET_INFERENCE_BATCH_SIZE": "16",
                               "UNET_MEMORY_MAX_POOL_SIZE_GB": "8", "UNET_HEALTH_DUMMY_INFERENCE_TEST": "false",
                               "UNET_PREPROCESSING_IMAGE_SIZE": "[192, 160]", "UNRELATED_VAR": "1"})
    assert (s.model.device, s.inference.batch_size, s.memory.max_pool_size_gb) == ("cuda", 16, 8)
    assert s.health.dummy_inference_test is False and s.preprocessing.image_size == (192, 160)


@pytest.mark.parametrize("environ, message", [
    ({"UNET_MODEL_DEVCE": "cpu"}, "UNET_MODEL_DEVCE: unknown setting unet.model.devce"),
    ({"UNET_MODEL_DEVICE": "tpu"}, "unet.model.device: Input should be 'auto', 'cuda' or 'cpu'"),
    ({"UNET_INFERENCE_BATCH_SIZE": "0"}, "unet.inference.batch_size: Input should be greater than or equal to 1"),
    ({"UNET_INFERENCE_THRESHOLD": "1.5"}, "unet.inference.threshold"),
])
def test_bad_values_are_one_clear_error_naming_the_key(environ, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(environ=environ)


def test_unknown_key_in_the_file_is_refused(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("unet:\n  inference:\n    batch_sise: 4\n")
    with pytest.raises(ConfigError, match=r"unet\.inference\.batch_sise: Extra inputs are not permitted"):
        load_settings(path, environ={})
    path.write_text("unet: {}\nextra: 1\n")
    with pytest.raises(ConfigError, match="single top-level key 'unet'"):
        load_settings(path, environ={})


def test_checkpoint_dir_is_relative_to_the_config_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("unet:\n  model:\n    checkpoint_dir: ckpts\n")
    assert load_settings(path, environ={}).model.checkpoint_dir == tmp_path / "ckpts"
