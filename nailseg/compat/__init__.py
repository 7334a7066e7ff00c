"""Every touch of BentoML's, circus' and uvicorn's private internals, in one folder, listed in ``PATCHES``.

Each was read and tested against the versions in ``VERIFIED`` (versions.py), the one version gate:
``check_versions`` refuses to start (RuntimeError) on any other, before anything is patched (every
``apply_*`` and every patch calls it), and each patch checks the exact attributes it replaces or reads
(RuntimeError if one is gone or changed). To move to a new BentoML: read each patched function in the
new version, run the tests each entry names, then add the version.
"""

from __future__ import annotations

from dataclasses import dataclass

from nailseg.compat.versions import VERIFIED, check_versions, installed  # noqa: F401 (the gate, here too)


@dataclass(frozen=True)
class Patch:
    name: str
    touches: str  # the private thing it uses or replaces
    why: str
    tests: str  # what re-verifies it


PATCHES = (
    Patch("batching.cap_batch_wait", "bentoml._internal.marshal.dispatcher.Optimizer.log_outbound",
          "BentoML's batcher holds lone requests ~390 ms after a burst; the wait it learns is capped",
          "tests/test_batching_patch.py; bench (single requests after a burst)"),
    Patch("whole_app.around_whole_app", "_bentoml_sdk.Service.to_asgi",
          "unknown paths renamed before BentoML's metrics middleware (no series per random path, no slash "
          "redirects); X-Content-Type-Options: nosniff on every answer, BentoML's own included",
          "tests/test_security.py, tests/test_e2e_security.py::test_unknown_paths_add_no_metric_series, "
          "tests/test_e2e_security.py::test_every_kind_of_answer_says_nosniff"),
    Patch("media_type.fixed_output_media_type", "_bentoml_sdk.method.APIMethod.output_spec.media_type",
          "BentoML derives each runner answer's media type from its JSON schema per call (~0.3 ms)",
          "tests/test_compat.py, every e2e test (runner answers)"),
    Patch("shutdown.arbiter_removes_sockets_last", "bentoml._internal.utils.circus.Arbiter.start/stop",
          "BentoML removes the runners' unix sockets on SIGTERM, before the API's requests in flight finish",
          "tests/test_e2e_faults.py (SIGTERM drills)"),
    Patch("shutdown.api_stops_accepting_first", "uvicorn.Server (servers, config, server_state, lifespan)",
          "on SIGTERM the port refuses new connections at once and queued ones are answered",
          "tests/test_shutdown.py, tests/test_e2e_faults.py"),
    Patch("shutdown.runner_stops_last", "the worker's SIGTERM handler (circus signals all workers at once)",
          "the runner serves until the API has stopped", "tests/test_e2e_faults.py"),
    Patch("start.start_http_server", "bentoml_cli._internal.start (start-http-server)",
          "the Kubernetes manifests and the split layout start each service on its own through it",
          "tests/test_compat.py, tests/test_k8s_manifests.py, tests/test_split_services.py"),
)


def apply_service_module() -> None:
    """At import of a service module, in every process `bentoml serve` starts (the arbiter too)."""
    from nailseg.compat import shutdown, whole_app

    check_versions()
    shutdown.arbiter_removes_sockets_last()
    whole_app.around_whole_app()


def apply_runner(max_batch_wait_s: float) -> None:
    from nailseg.compat import batching

    check_versions()
    batching.cap_batch_wait(max_batch_wait_s)
