"""The inference runner: its own BentoML service, so the model's device and the API's CPU
workers can be scaled and placed apart. The API service reaches it with ``bentoml.depends``.

Its batch API uses BentoML's adaptive batching; only validated, decoded and resized uint8
arrays reach it, so one bad request can never fail a batch that holds others.

The API's workers import this module too (``bentoml.depends`` needs the class), so the engine is imported
inside the class, in the runner's process only. On a CPU with OpenVINO the runner needs no torch
(nailseg/inference/build.py): it serves the store entry's IR.
"""

from __future__ import annotations

import logging
import threading
import time

import bentoml
import numpy as np

from nailseg import compat, metrics
from nailseg.api.schemas import RunnerStatus, SkippedModel
from nailseg.compat import shutdown
from nailseg.compat.media_type import fixed_output_media_type
from nailseg.config import get_settings
from nailseg.inference.hardware import require_runtimes, torch_available
from nailseg.model.spec import StoredModelInfo
from nailseg.store.entries import MODEL_NAME, candidates, require_stored

log = logging.getLogger("unet.runner")
RUNNER_TIMEOUT_S = 120
settings = get_settings()


compat.apply_service_module()
compat.apply_runner(settings.inference.max_batch_wait_ms / 1000)  # fail loudly on unverified versions

try:  # `bentoml serve` and `bentoml build` need a model, and torch for its torch paths: say so in one line
    require_stored(f"{MODEL_NAME}:{settings.model.tag}")
    require_runtimes(settings.model.device, settings.inference.backend)
except (LookupError, RuntimeError) as e:
    raise SystemExit(f"error: {e}") from None


@bentoml.service(
    name="unet_runner",
    workers=1,  # one model copy per device; reloads swap it in place
    traffic={"timeout": RUNNER_TIMEOUT_S},
    # BentoML 1.4's dependency client recycles its connection pool every 100 calls while
    # other calls still use it (bentoml#5540): keep one pool for the process's life.
    runner_connection={"max_requests": 10**9, "max_age": 1e9},
    # Its callers are the API's workers, one call per image: the API's access log already has a line
    # for every client request, so a runner line per call is only noise (and the runner's CPU).
    logging={"access": {"enabled": False}},
    tracing=settings.api.bentoml_tracing,
)
class UNetRunner:
    # Referencing the model makes `bentoml build` pack it into the Bento.
    packaged_model = bentoml.models.BentoModel(f"{MODEL_NAME}:latest")

    def __init__(self) -> None:
        self.settings = settings
        self.gpu_available = False
        if torch_available():  # here, not at the top: the API's workers import this module too
            import torch

            self.gpu_available = torch.cuda.is_available()
        self.engine = None  # nailseg.inference.engine.InferenceEngine
        self.info: StoredModelInfo | None = None
        self.tag: str | None = None
        self.skipped: dict[str, str] = {}  # store tag -> why it is not served
        self.error: str | None = None  # why no model is served, or why the last reload failed
        self._reload_lock = threading.Lock()
        shutdown.runner_stops_last(drain_s=RUNNER_TIMEOUT_S + 10)  # the API's requests in flight finish first
        # Eager, and never a crash loop: the newest entry that loads and validates, else no model
        # (the runner still starts: /readyz says 503 and the API answers MODEL_NOT_READY).
        for stored in candidates(self.settings.model.tag):
            if self._try_load(str(stored.tag), warm_up=True):
                break
        else:
            self.error = f"no store entry could be served: {'; '.join(f'{t}: {r}' for t, r in self.skipped.items())}"
            log.error("%s", self.error)

    def _try_load(self, tag: str, warm_up: bool) -> bool:
        """Load ``tag``; on failure log one line, remember why, keep the engine served now."""
        try:
            self.load(tag, warm_up)
        except Exception as e:  # a bad store entry (corrupt, NaN, wrong architecture, invalid output)
            reason = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            self.skipped[tag] = reason
            log.error("skipped model %s: %s", tag, reason)
            return False
        self.skipped.pop(tag, None)
        self.error = None
        return True

    def load(self, tag: str, warm_up: bool) -> float:
        """Build a new engine from a store entry, validate and warm it, then swap it in.

        Requests in flight keep the engine they started with; the old one is freed when they finish.
        Returns the seconds it took.
        """
        from nailseg.inference.build import engine_from_settings
        from nailseg.store.load import load_stored

        started = time.perf_counter()
        with self._reload_lock:
            loaded = load_stored(tag)
            info, tag = loaded.info, loaded.tag
            s = self.settings
            engine = engine_from_settings(loaded.build_model, info.preprocessing, s, loaded.openvino_dir,
                                          info.int8_gate, identity=(info.source_sha256, str(tag)))
            if s.health.startup_validation and not engine.check(dummy_inference=True):
                raise RuntimeError(f"model {tag} failed its start-up validation (non-probability output)")
            if warm_up:
                engine.warm_up()
            self.engine, self.info, self.tag = engine, info, tag
            metrics.get().model_served(tag=str(tag), backend=engine.backend.name, precision=str(engine.precision),
                                       device=str(engine.device))
        seconds = time.perf_counter() - started
        log.info("loaded %s (%s, %s params) on %s, %s %s (%s), %d buffer slots of %d images, in %.1fs",
                 tag, info.model_variant, info.parameters, engine.device, engine.backend.name, engine.mode,
                 engine.precision_reason, engine.slot_count, engine.batch_size, seconds)
        return seconds

    @bentoml.api(
        batchable=True,
        max_batch_size=settings.inference.batch_size,
        max_latency_ms=settings.inference.max_latency_ms,
    )
    def infer(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 at model size -> (N, H, W) float32 nail probabilities."""
        m, engine = metrics.get(), self.engine
        m.batch_size.observe(len(images))
        m.pool.set(min(1.0, engine.utilisation()["input_pool_utilization"] + len(images) / engine.capacity))
        try:
            with m.inference.time():
                return engine.infer(images)
        finally:
            m.pool.set(engine.utilisation()["input_pool_utilization"])  # slots still in use by other calls

    @bentoml.api
    async def ping(self) -> bool:
        """The runner process answers (on its event loop, also while the model is busy): the API's liveness probe."""
        return True

    @bentoml.api
    def status(self, refresh: bool = False) -> RunnerStatus:
        """Real state; re-checks (with a dummy forward pass if configured) at most once per interval."""
        engine = self.engine
        h = self.settings.health
        if refresh and engine is not None and (
            engine.last_check is None or time.time() - engine.last_check >= h.health_check_interval
        ):
            engine.check(dummy_inference=h.dummy_inference_test)
        return self._status()

    @bentoml.api
    def reload(self, force_reload: bool = False, warm_up: bool = True) -> RunnerStatus:
        """Load the store's newest (or pinned) model if it differs from the one served (always with
        force_reload). A model that does not load leaves the served one in place; ``error`` says why."""
        target = str(candidates(self.settings.model.tag)[0].tag)
        if force_reload or target != self.tag or self.engine is None:
            if not self._try_load(target, warm_up):
                self.error = f"could not load {target}: {self.skipped[target]}"
        elif warm_up:
            self.engine.warm_up()
        return self._status()

    def _status(self) -> RunnerStatus:
        engine = self.engine
        return RunnerStatus(
            model_loaded=engine is not None,
            model_tag=self.tag,
            model=self.info,
            device=str(engine.device) if engine else "none",
            precision=engine.precision if engine else None,
            precision_reason=engine.precision_reason if engine else None,
            backend=engine.backend.name if engine else None,
            test_time_flip=engine.test_time_flip if engine else None,
            gpu_available=self.gpu_available,
            pools_ready=engine is not None,
            memory_usage=engine.utilisation() if engine else {},
            last_health_check=engine.last_check if engine else None,
            last_health_check_ok=engine.last_check_ok if engine else None,
            error=self.error,
            skipped_models=[SkippedModel(model_tag=t, reason=r) for t, r in self.skipped.items()],
        )

    def __is_ready__(self) -> bool:
        return self.engine is not None


fixed_output_media_type(UNetRunner)
