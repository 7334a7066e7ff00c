"""Every touch of BentoML's, circus' and uvicorn's private internals, in one folder, listed in ``PATCHES``.

Each was read and tested against the versions in ``VERIFIED``, the one version gate: ``check_versions``
refuses to start (RuntimeError) on any other, before anything is patched (every ``apply_*`` and every
patch calls it), and each patch checks the exact attributes it replaces or reads (RuntimeError if one
is gone or changed). To move to a new BentoML:
read each patched function in the new version, run the tests each entry names, then add the version.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

VERIFIED = {"bentoml": ("1.4.40",), "uvicorn": ("0.54.0",), "circus": ("0.18.3",)}


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
    Patch("asgi.around_whole_app", "_bentoml_sdk.Service.to_asgi",
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


def installed(name: str) -> str:
    return importlib.import_module(name).__version__


def check_versions() -> None:
    wrong = {name: installed(name) for name, ok in VERIFIED.items() if installed(name) not in ok}
    if wrong:
        found = ", ".join(f"{n} {v} (verified: {', '.join(VERIFIED[n])})" for n, v in wrong.items())
        raise RuntimeError(f"nailseg/compat patches private internals verified with other versions: {found}. "
                           "Pin the verified versions (requirements.txt) or re-verify each patch in "
                           "nailseg/compat/__init__.py's PATCHES and add the version to VERIFIED.")


def apply_service_module() -> None:
    """At import of a service module, in every process `bentoml serve` starts (the arbiter too)."""
    from nailseg.compat import asgi, shutdown

    check_versions()
    shutdown.arbiter_removes_sockets_last()
    asgi.around_whole_app()


def apply_runner(max_batch_wait_s: float) -> None:
    from nailseg.compat import batching

    check_versions()
    batching.cap_batch_wait(max_batch_wait_s)
