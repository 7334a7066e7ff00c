"""Scale-out layout: the runner and the API as separate processes on their own ports, as deploy/k8s runs
them, started through BentoML's start module (internal: nailseg/compat/start.py lists it, and this test
is what notices a change). The servers run with nncf and
tqdm made unimportable: serving must not need the import or training extras."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import BUNDLED_MIN_DICE, dice, example_photos, require_bundled
from support.server import Server, free_port, launch, run_import
from support.checks import b64, png_array

from nailseg.compat import start

pytestmark = pytest.mark.e2e

START = start.command_line(sys.executable)
RUNNER = "unet_runner"  # the runner service's name (runners/unet_runner.py), as in --depends NAME=URL
NOT_SERVING = ("nncf", "tqdm")  # import and training extras (pyproject.toml), absent from the image


@dataclass
class Split:
    runner: Server
    api: Server
    model_tag: str


def blocking_path(root) -> str:
    """A directory that, first on PYTHONPATH, makes the NOT_SERVING packages fail to import."""
    for name in NOT_SERVING:
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(f"raise ImportError('{name} is not a serving dependency')\n")
    return str(root)


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Split:
    home = tmp_path_factory.mktemp("split_home")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    model_tag = run_import(env, require_bundled()).split()[1].rstrip(":")  # the import may use nncf
    env["PYTHONPATH"] = blocking_path(home / "blocked")
    runner_url, api_url = (f"http://127.0.0.1:{port}" for port in (free_port(), free_port()))
    runner = launch([*START, "--service-name", RUNNER, "--host", "127.0.0.1", "--port", runner_url.rsplit(":", 1)[1],
                     "."], env, home / "runner.log", runner_url)
    api = launch([*START, "--depends", f"{RUNNER}={runner_url}", "--host", "127.0.0.1",
                  "--port", api_url.rsplit(":", 1)[1], "."], env, home / "api.log", api_url)
    yield Split(runner, api, model_tag)
    api.stop(30)
    runner.stop(30)


def segment_examples(api: Server) -> tuple[list[np.ndarray], list[np.ndarray]]:
    masks, truths = [], []
    for photo, truth in example_photos():
        resp = api.post("/api/unet/segment", {"image_data": b64(photo)})
        assert resp.status_code == 200, resp.text[:500]
        masks.append(png_array(resp.json()["mask_data"]))
        truths.append(png_array(b64(truth)))
    return masks, truths


def test_the_servers_run_without_the_import_and_training_packages(split):
    for name in NOT_SERVING:  # the block is real: these imports fail in the servers' environment
        out = subprocess.run([sys.executable, "-c", f"import {name}"], env=split.api.env, capture_output=True, text=True)
        assert out.returncode != 0 and "not a serving dependency" in out.stderr


def test_api_segments_photos_through_the_runner_on_its_own_port(split):
    masks, truths = segment_examples(split.api)
    assert all(m.shape == t.shape for m, t in zip(masks, truths))
    assert dice(np.concatenate([m.ravel() for m in masks]), np.concatenate([t.ravel() for t in truths])) \
        >= BUNDLED_MIN_DICE


def test_health_model_info_and_initialize_reach_the_runner(split):
    health = split.api.get("/api/unet/health")
    assert health.status_code == 200 and health.json()["model_loaded"] is True
    info = split.api.get("/api/unet/model-info").json()
    assert info["model_tag"] == split.model_tag
    init = split.api.post("/api/unet/initialize", {"force_reload": True, "warm_up": True}).json()
    assert init["success"] is True and init["service_ready"] is True and init["model_tag"] == split.model_tag


def test_the_runner_process_serves_the_model_only_and_both_answer_the_probes(split):
    assert split.runner.get("/api/unet/health").status_code == 404
    for server in (split.runner, split.api):  # the probes deploy/k8s gives both tiers
        assert server.get("/readyz").status_code == 200 and server.get("/livez").status_code == 200


def test_a_second_api_process_shares_the_runner(split, tmp_path):
    """API replicas scale apart from the runner; this one is configured by environment, as containers are."""
    port = free_port()
    env = {**split.api.env, "BENTOML_SERVE_DEPENDS": f"{RUNNER}={split.runner.url}", "BENTOML_PORT": str(port)}
    second = launch([*START, "--host", "127.0.0.1", "."], env, tmp_path / "api2.log", f"http://127.0.0.1:{port}")
    try:
        masks, _ = segment_examples(second)
        first, _ = segment_examples(split.api)
        assert all(np.array_equal(a, b) for a, b in zip(masks, first))
        assert second.get("/api/unet/model-info").json()["model_tag"] == split.model_tag
    finally:
        second.stop(30)
