"""Several API workers on one machine (`api.workers`, BentoML's `workers` for unet_api), on a real
`bentoml serve .`: both answer, the unet_* metrics are summed over them, SIGTERM drains them all."""

from __future__ import annotations

import collections
import concurrent.futures
import re
import signal

import psutil
import pytest
import torch
from conftest import randomised_model, users_checkpoint
from support.server import run_import, serve_env, serving
from support.server import PHOTO, inflight_images, new_connection, wait_for

pytestmark = pytest.mark.e2e

WORKERS = 2
REQUESTS = 40


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workers")
    checkpoint = tmp / "tiny.pth"
    torch.save(users_checkpoint(randomised_model()), checkpoint)
    env = serve_env(tmp / "bentoml_home", UNET_API_WORKERS=str(WORKERS), UNET_LOGGING_LEVEL="INFO",
                    UNET_LOGGING_LOG_REQUESTS="true")
    run_import(env, checkpoint)
    with serving(env) as server:
        yield server


def _segment_ok(server) -> int:
    text = server.get("/metrics").text
    found = re.search(r'^unet_requests_total\{code="OK",endpoint="segment"\} ([0-9.]+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


def test_every_worker_answers_and_the_metrics_add_up(two_workers):
    assert len(two_workers.workers("unet_api")) == WORKERS
    before = _segment_ok(two_workers)
    # fresh connections, so the kernel spreads them over the workers sharing the port
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = collections.Counter(pool.map(lambda _: new_connection(two_workers.port), range(REQUESTS)))
    assert statuses == {200: REQUESTS}
    served_by = set(re.findall(r"\[entry_service:unet_api:(\d+)\][^\n]* segment images=1", two_workers.log.read_text()))
    assert served_by == {str(i) for i in range(1, WORKERS + 1)}  # each worker took some
    assert _segment_ok(two_workers) - before == REQUESTS  # one counter, summed over the worker processes


def test_sigterm_drains_every_worker(two_workers):
    tree = [psutil.Process(two_workers.proc.pid), *psutil.Process(two_workers.proc.pid).children(recursive=True)]
    photos = [{"image_data": PHOTO}] * 4
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        in_flight = [pool.submit(two_workers.post, "/api/unet/segment-batch", {"images": photos}) for _ in range(6)]
        # SIGTERM once the API works on them (or, on a fast machine, has answered them all already)
        wait_for(lambda: inflight_images(two_workers) > 0 or all(f.done() for f in in_flight), 60, every_s=0.02,
                 what="requests in flight")
        two_workers.proc.send_signal(signal.SIGTERM)
        after = collections.Counter(new_connection(two_workers.port) for _ in range(200))
        statuses = [f.result(timeout=150).status_code for f in in_flight]
    assert statuses == [200] * 6
    assert set(after) <= {"refused", 200} and after["refused"] > 0, after  # no resets, no hangs
    assert two_workers.proc.wait(150) is not None
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive
