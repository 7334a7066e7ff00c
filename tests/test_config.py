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
    with pytest.raises(ConfigError, match="unknown top-level key 'extra'"):
        load_settings(path, environ={})


def test_checkpoint_dir_is_relative_to_the_config_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("unet:\n  model:\n    checkpoint_dir: ckpts\n")
    assert load_settings(path, environ={}).model.checkpoint_dir == tmp_path / "ckpts"


def test_development_sits_beside_unet_as_the_guide_shows(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("development:\n  enable_debug_endpoints: true\n  save_debug_outputs: true\n"
                    "  debug_output_dir: \"./debug_outputs/\"\n  max_debug_outputs: 3\n"
                    "unet:\n  logging:\n    level: DEBUG\n    log_requests: true\n    enable_performance_logging: true\n")
    s = load_settings(path, environ={})
    dev = s.development
    assert dev.enable_debug_endpoints and dev.save_debug_outputs and dev.max_debug_outputs == 3
    assert dev.debug_output_dir == tmp_path / "debug_outputs"  # relative to the config file
    assert s.logging.enable_performance_logging and s.logging.level == "DEBUG"


def test_debug_keys_are_all_off_by_default():
    s = load_settings(environ={})
    dev = s.development
    assert not (dev.enable_debug_endpoints or dev.save_debug_outputs or s.logging.enable_performance_logging)
    assert dev.max_debug_outputs == 200 and dev.debug_output_dir.is_absolute()


@pytest.mark.parametrize("text, message", [
    ("development:\n  save_debug_output: true\n", r"development\.save_debug_output: Extra inputs are not permitted"),
    ("development:\n  max_debug_outputs: 0\n", r"development\.max_debug_outputs: Input should be greater than"),
    ("development: true\n", r"development: Input should be a valid dictionary"),
    ("unet:\n  development:\n    save_debug_outputs: true\n", r"unet\.development: development is a top-level key"),
    ("unet: {}\ndevelopment: {}\ndebug: 1\n", r"unknown top-level key 'debug'"),
    ("unet:\n  logging:\n    enable_perf_logging: true\n", r"unet\.logging\.enable_perf_logging: Extra inputs"),
])
def test_unknown_or_bad_debug_keys_fail_loudly_naming_them(tmp_path, text, message):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as e:
        load_settings(path, environ={})
    assert "\n" not in str(e.value)


def test_development_keys_have_environment_overrides(tmp_path):
    s = load_settings(environ={"UNET_DEVELOPMENT_SAVE_DEBUG_OUTPUTS": "true", "UNET_DEVELOPMENT_MAX_DEBUG_OUTPUTS": "3",
                               "UNET_DEVELOPMENT_DEBUG_OUTPUT_DIR": str(tmp_path / "out"),
                               "UNET_LOGGING_ENABLE_PERFORMANCE_LOGGING": "true"})
    assert s.development.save_debug_outputs and s.development.max_debug_outputs == 3
    assert s.development.debug_output_dir == tmp_path / "out" and s.logging.enable_performance_logging
    with pytest.raises(ConfigError, match="UNET_DEVELOPMENT_SAVE_OUTPUTS: unknown setting development.save_outputs"):
        load_settings(environ={"UNET_DEVELOPMENT_SAVE_OUTPUTS": "true"})
    with pytest.raises(ConfigError, match="development.max_debug_outputs: Input should be greater than"):
        load_settings(environ={"UNET_DEVELOPMENT_MAX_DEBUG_OUTPUTS": "0"})
