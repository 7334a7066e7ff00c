"""A real `bentoml serve .` for end-to-end tests: own BENTOML_HOME, free port, bounded start and stop; the
bundled model's server as the shared fixtures configure it (``start_server``); polling (``wait_for``);
one raw connection (``new_connection``)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from conftest import ROOT, example_photos, require_bundled

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 240


@dataclass
class Server:
    url: str
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen

    def post(self, path: str, body, timeout: float = 120, headers: dict[str, str] | None = None,
             **kw) -> httpx.Response:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return httpx.post(self.url + path, content=data, headers={"content-type": "application/json", **(headers or {})},
                          timeout=timeout, **kw)

    def get(self, path: str, timeout: float = 60, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(self.url + path, timeout=timeout, headers=headers)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def workers(self, service: str) -> list[int]:
        """Pids of the serve process's workers for ``service`` (unet_api or unet_runner)."""
        import psutil

        return [p.pid for p in psutil.Process(self.proc.pid).children()
                if f"--service-name {service}" in " ".join(p.cmdline())]

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM the serve process (as an orchestrator does); SIGKILL the group after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.poll()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_import(env: dict[str, str], checkpoint: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "models_import", "--checkpoint", str(checkpoint)], cwd=ROOT,
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout


def serve_env(home: Path, **settings: str) -> dict[str, str]:
    """The environment of a server with its own model store; ``settings`` are UNET_* overrides."""
    return {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True", **settings}


def wait_ready(server: Server, deadline_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if httpx.get(server.url + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if server.proc.poll() is not None or time.monotonic() > deadline:
            server.stop(0)
            pytest.fail(f"bentoml serve did not become ready:\n{server.log.read_text()[-4000:]}")
        time.sleep(1)


def start(cmd: list[str], env: dict[str, str], log: Path, url: str) -> Server:
    """Run ``cmd`` (a server answering at ``url``) in its own process group, output to ``log``; not waited for."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Server(url, env, log, proc)


def launch(cmd: list[str], env: dict[str, str], log: Path, url: str) -> Server:
    """``start`` and wait for /readyz (else fail with its log)."""
    server = start(cmd, env, log, url)
    wait_ready(server)
    return server


@contextlib.contextmanager
def serving(env: dict[str, str], ready: bool = True) -> Iterator[Server]:
    """`bentoml serve .` on a free port with ``env``; waits for /readyz (if ``ready``); always stopped."""
    port = free_port()
    server = start([str(BIN / "bentoml"), "serve", ".", "--port", str(port), "--host", "127.0.0.1"], env,
                   Path(env["BENTOML_HOME"]) / f"serve-{port}.log", f"http://127.0.0.1:{port}")
    try:
        if ready:
            wait_ready(server)
        yield server
    finally:
        server.stop(30)


MAX_BODY_MB = 2
MAX_BATCH = 4


def start_server(tmp_path_factory, **settings: str):
    """Import the bundled model into a fresh store, serve it, yield a Server, stop it (a fixture's body).

    ``settings`` are extra environment variables (``UNET_...``) for servers configured otherwise.
    """
    env = serve_env(tmp_path_factory.mktemp("bentoml_home"), **{
        "UNET_LIMITS_MAX_BODY_MB": str(MAX_BODY_MB), "UNET_LIMITS_MAX_BATCH_IMAGES": str(MAX_BATCH),
        "UNET_LIMITS_MAX_IMAGE_PIXELS": "4000000", "UNET_HEALTH_HEALTH_CHECK_INTERVAL": "0",
        "UNET_LIMITS_MAX_BATCH_PIXELS": "6000000", **settings})
    assert "imported unet:" in run_import(env, require_bundled())
    with serving(env) as server:
        yield server


def wait_for(condition, timeout_s: float, every_s: float = 0.2, what: str = "the condition"):
    """Poll ``condition()`` until it is truthy (its value is returned); fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not hold within {timeout_s:.0f} s")
        time.sleep(every_s)


PHOTO = base64.b64encode(example_photos()[0][0].read_bytes()).decode()


def inflight_images(server: Server) -> float:
    """The API's ``unet_inflight_images`` gauge: images being worked on now, summed over its workers."""
    found = re.search(r"^unet_inflight_images ([0-9.e+]+)$", server.get("/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def new_connection(port: int) -> int | str:
    """One fresh connection sending one /segment: its HTTP status, "refused", "reset" or "no answer"."""
    body = json.dumps({"image_data": PHOTO}).encode()
    request = (b"POST /api/unet/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
            conn.sendall(request)
            answer = b"".join(iter(lambda: conn.recv(65536), b""))
    except ConnectionRefusedError:
        return "refused"
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except socket.timeout:
        return "no answer"
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else "no answer"
