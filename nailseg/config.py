"""Settings: config.yaml (the serving guide's keys), validated, with UNET_<SECTION>_<KEY> overrides.

One Settings object drives the import script, the runner and the API service. Every section sits under
the top-level key ``unet:``, except ``development:``, which the serving guide puts beside it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "UNET_"
CONFIG_ENV = "UNET_CONFIG"  # path of the config file; not a setting itself


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSettings(_Section):
    checkpoint_dir: Path = Path("models/unet/checkpoints")
    model_variant: Literal["lightweight", "standard", "deep"] = "standard"
    device: Literal["auto", "cuda", "cpu"] = "auto"
    fallback_to_cpu: bool = True
    tag: str = Field("latest", pattern=r"^[\w.-]+$", description="the store version to serve; latest: the newest "
                     "that loads and validates (older ones are the fallback)")


class PreprocessingSettings(_Section):
    """Used only where a checkpoint does not say how it was trained."""

    image_size: tuple[int, int] = (256, 256)
    normalize: bool = True  # true: (x/255 - mean) / std; false: x/255
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


class InferenceSettings(_Section):
    batch_size: int = Field(8, ge=1, le=256, description="largest batch the runner forms and preallocates for")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="default when a request gives none")
    enable_confidence: bool = True
    enable_batch_processing: bool = True
    max_latency_ms: int = Field(5000, ge=1, description="adaptive batching: longest a request may wait")
    max_batch_wait_ms: float = Field(0, ge=0, description="longest the batcher may hold a request to fill a batch")
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = "auto"  # auto: see nailseg/inference/precision.py
    backend: Literal["auto", "torch", "openvino"] = "auto"
    precision_cache_dir: Path | None = Field(None, description="where precision auto keeps its start-up "
                                             "trial's verdicts (one per model and CPU); default: "
                                             "$BENTOML_HOME/precision_trials")
    test_time_flip: bool = Field(False, description="also segment the mirror image and average: better masks, "
                                 "twice the model time")


class MemorySettings(_Section):
    pool_size_multiplier: int = Field(2, ge=1, le=64, description="buffer sets: batches that may run at once")
    enable_gpu_pools: bool = True
    max_pool_size_gb: float = Field(4, gt=0)


class HealthSettings(_Section):
    startup_validation: bool = True
    dummy_inference_test: bool = True
    health_check_interval: float = Field(30, ge=0)
    runner_probe_interval_s: float = Field(1, gt=0, description="how often the API probes the runner (its ping API)")
    runner_probe_timeout_s: float = Field(3, gt=0, description="a probe slower than this failed")
    runner_probe_failures: int = Field(2, ge=1, description="failed probes in a row that mark the runner down")
    liveness_runner_timeout_s: float = Field(60, gt=0, description="/livez fails once the runner has been down "
                                             "(or never up) this long")


class LimitsSettings(_Section):
    max_body_mb: float = Field(32, gt=0)
    max_image_pixels: int = Field(16_000_000, gt=0, description="pixels one image may declare (413 before decoding)")
    max_batch_images: int = Field(32, ge=1)
    max_batch_pixels: int = Field(50_000_000, gt=0, description="pixels a /segment-batch request's images may "
                                  "declare together (413 before decoding)")
    rate_limit_per_minute: float = Field(0, ge=0, description="requests a client (API key, else address) may "
                                         "make per minute, per API process; 0: no rate limit")
    rate_limit_burst: int = Field(0, ge=0, description="requests a client may make at once; 0: one minute's worth")
    max_inflight_images: int = Field(0, ge=0, description="images the API process works on at once before it "
                                     "answers 503 OVERLOADED; 0: batch_size x pool_size_multiplier x 4")


DEFAULT_PUBLIC_PATHS = ["/readyz", "/livez", "/healthz", "/metrics", "/api/unet/health", "/api/unet/demo",
                        "/v2/health/live", "/v2/health/ready"]


class SecuritySettings(_Section):
    """API keys, open paths, CORS and what /model-info reveals. No keys: the service is open."""

    api_keys: list[SecretStr] = Field([], description="keys that may call the API; empty (and no admin keys): open")
    admin_keys: list[SecretStr] = Field([], description="keys that may also call admin endpoints (/initialize)")
    api_keys_file: Path | None = Field(None, description="more API keys, one a line (# comments): a mounted secret")
    admin_keys_file: Path | None = None
    public_paths: list[str] = Field(DEFAULT_PUBLIC_PATHS, description="paths open without a key")
    cors_origins: list[str] = Field([], description="browser origins allowed to call the API; empty: CORS off")
    expose_server_paths: bool = Field(False, description="/model-info shows the checkpoint's full server path, "
                                      "not only its file name")

    @field_validator("api_keys", "admin_keys", "cors_origins", "public_paths", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """UNET_SECURITY_API_KEYS=k1,k2 as well as the YAML list "[k1, k2]"."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("api_keys", "admin_keys")
    @classmethod
    def _sane_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            text = key.get_secret_value()
            if len(text) < 16 or any(c.isspace() for c in text):
                raise ValueError("each key must be at least 16 characters, without spaces")
        return keys


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_requests: bool = False
    enable_performance_logging: bool = Field(False, description="one log line per image request with its stage "
                                             "times (decode, runner, encode, total) and request id")


class DevelopmentSettings(_Section):
    """The serving guide's debug mode (top-level ``development:``); every key off by default."""

    enable_debug_endpoints: bool = Field(False, description="GET /api/unet/debug/{config,requests,outputs}, "
                                         "for admin keys only; off: 404")
    save_debug_outputs: bool = Field(False, description="write each image request's photo, mask and overlay "
                                     "under debug_output_dir")
    debug_output_dir: Path = Field(Path("debug_outputs"), description="where; relative to the config file")
    max_debug_outputs: int = Field(200, ge=1, description="request folders kept there; the oldest are removed")


class ApiSettings(_Section):
    workers: int = Field(1, ge=1, le=256, description="API worker processes (BentoML's workers for unet_api); "
                         "each decodes and encodes on one core, so a many-core node wants several")
    tracing: bool = Field(False, description="OpenTelemetry spans for every request, in the API and the runner "
                          "(export them with BentoML's own tracing configuration); off, no span is made")

    @property
    def bentoml_tracing(self) -> dict:
        """BentoML's service `tracing` config: with tracing off every URL is excluded from its middleware."""
        return {} if self.tracing else {"excluded_urls": [".*"]}


class Settings(_Section):
    api: ApiSettings = ApiSettings()
    model: ModelSettings = ModelSettings()
    preprocessing: PreprocessingSettings = PreprocessingSettings()
    inference: InferenceSettings = InferenceSettings()
    memory: MemorySettings = MemorySettings()
    health: HealthSettings = HealthSettings()
    limits: LimitsSettings = LimitsSettings()
    security: SecuritySettings = SecuritySettings()
    logging: LoggingSettings = LoggingSettings()
    development: DevelopmentSettings = DevelopmentSettings()  # top-level in config.yaml, beside unet

    @property
    def max_body_bytes(self) -> int:
        return int(self.limits.max_body_mb * 2**20)

    @property
    def max_inflight_images(self) -> int:
        """limits.max_inflight_images, or (0) enough for the runner's buffer sets four times over."""
        return self.limits.max_inflight_images or self.inference.batch_size * self.memory.pool_size_multiplier * 4

    def with_inference(self, **changes: Any) -> Settings:
        """A copy with some ``inference`` keys changed (e.g. backend, precision)."""
        return self.model_copy(update={"inference": self.inference.model_copy(update=changes)})


class ConfigError(Exception):
    """Bad configuration: one line naming the key (or variable) and the problem."""


TOP_LEVEL_SECTIONS = ("development",)  # sections beside ``unet:`` in the file, as the serving guide has them
_TOP_LEVEL_KEYS = ("unet", *TOP_LEVEL_SECTIONS)


def setting_name(*loc: str | int) -> str:
    """A setting's name as the file spells it: ``unet.inference.batch_size``, ``development.save_debug_outputs``."""
    return ".".join(str(p) for p in (loc if loc and loc[0] in TOP_LEVEL_SECTIONS else ("unet", *loc)))


def _sections(doc: Any, path: Path) -> dict[str, Any]:
    """The file's sections, one mapping: ``unet:``'s and the top-level ones beside it."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping with the top-level key 'unet', found {type(doc).__name__}")
    unknown = sorted(str(k) for k in doc if k not in _TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key {unknown[0]!r}: expected "
                          f"{' and '.join(map(repr, _TOP_LEVEL_KEYS))}")
    data = doc.get("unet") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: unet must be a mapping")
    for section in TOP_LEVEL_SECTIONS:
        if section in data:
            raise ConfigError(f"{path}: unet.{section}: {section} is a top-level key, beside unet (not under it)")
        if doc.get(section) is not None:
            data[section] = doc[section]
    return data


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    sections = Settings.model_fields
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            continue  # not one of ours
        key = rest[len(section) + 1:]
        if key not in sections[section].annotation.model_fields:
            raise ConfigError(f"{name}: unknown setting {setting_name(section, key)}")
        try:
            overrides.setdefault(section, {})[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"{name}: cannot parse value {raw!r}") from None
    return overrides


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    path = Path(path or environ.get(CONFIG_ENV) or PROJECT_ROOT / "config.yaml")
    data: dict[str, Any] = {}
    if path.exists():
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        data = _sections(doc, path)
    elif environ.get(CONFIG_ENV):
        raise ConfigError(f"{path}: config file does not exist")
    for section, values in _env_overrides(environ).items():
        if not isinstance(data.get(section, {}), dict):
            raise ConfigError(f"{path}: {setting_name(section)} must be a mapping")
        data[section] = {**(data.get(section) or {}), **values}
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = setting_name(*err["loc"])
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ConfigError(f"{path}: {where}: {err['msg']}{more}") from None
    if not settings.model.checkpoint_dir.is_absolute():
        settings.model.checkpoint_dir = (path.parent / settings.model.checkpoint_dir).resolve()
    if (cache := settings.inference.precision_cache_dir) is not None and not cache.is_absolute():
        settings.inference.precision_cache_dir = (path.parent / cache).resolve()
    if not settings.development.debug_output_dir.is_absolute():
        settings.development.debug_output_dir = (path.parent / settings.development.debug_output_dir).resolve()
    for key in ("api_keys_file", "admin_keys_file"):
        if (file := getattr(settings.security, key)) is not None and not file.is_absolute():
            setattr(settings.security, key, (path.parent / file).resolve())
    return settings


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return load_settings()
