"""`make container-test` from the test suite: builds the Bento's image with podman, runs it, segments a
labelled photo and checks /model-info (deploy/container_test.sh). It needs root, podman and minutes
(about 10 cold, 3-4 warm here), so it runs only when asked: RUN_CONTAINER_TEST=1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.environ.get("RUN_CONTAINER_TEST") != "1",
                       reason="builds and runs the image (root, podman, minutes): set RUN_CONTAINER_TEST=1"),
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (apt-get install podman runc)"),
]


def test_the_image_builds_runs_and_segments_a_photo():
    out = subprocess.run([str(ROOT / "deploy" / "container_test.sh")], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHON": sys.executable}, timeout=3600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
    report = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))
    assert report["problems"] == [] and report["dice"] >= 0.85 and report["model_tag"].startswith("unet:")
