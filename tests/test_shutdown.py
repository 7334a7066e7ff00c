"""The shutdown-order pieces that run inside BentoML's workers, checked on their own."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys

import pytest

from conftest import ROOT
from nailseg import shutdown


def test_a_shut_listening_socket_refuses_new_connections_for_every_holder():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # listening
        shutdown.stop_listening(listener.fileno())  # through a duplicate, as a worker does with --fd
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)


def test_sigterm_still_ends_a_process_that_had_no_handler_before():
    code = ("import os, signal, time\n"
            "from nailseg import shutdown\n"
            "shutdown._chain_sigterm(lambda exit_now: exit_now())\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "time.sleep(10)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60)
    assert proc.returncode == -signal.SIGTERM


class _Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(b"ok:" + data)
        self.transport.close()


def _answer_to(conn: socket.socket) -> bytes:
    conn.settimeout(10)
    with conn:
        return b"".join(iter(lambda: conn.recv(1024), b""))


def _listener() -> tuple[socket.socket, int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener, listener.getsockname()[1]


def test_connections_already_queued_are_answered_not_reset_and_new_ones_refused():
    async def main():
        loop = asyncio.get_running_loop()
        listener, port = _listener()
        server = await loop.create_server(_Answer, sock=listener)
        # the loop does not run until the next await: these wait in the kernel's accept queue
        queued = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        for i, conn in enumerate(queued):
            conn.sendall(b"%d" % i)
        shutdown.stop_listening(listener.fileno(), [server])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        return await asyncio.gather(*(loop.run_in_executor(None, _answer_to, conn) for conn in queued))

    assert asyncio.run(main()) == [b"ok:0", b"ok:1", b"ok:2"]


_API_WORKER_GETS_SIGTERM = """
import asyncio, os, signal, socket, sys
from nailseg import shutdown

class Uvicorn:  # what the worker finds: uvicorn.Server, whose handle_exit is the SIGTERM handler
    def __init__(self):
        self.servers, self.exits = [], 0

    def handle_exit(self, sig, frame):
        self.exits += 1

def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return False
    except ConnectionRefusedError:
        return True

async def main(uvicorn):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    uvicorn.servers.append(await asyncio.get_running_loop().create_server(asyncio.Protocol, sock=listener))
    sys.argv = ["worker", "--fd", str(listener.fileno())]
    shutdown.api_stops_accepting_first()
    assert not refused(port)
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(500):
        if uvicorn.exits:
            break
        await asyncio.sleep(0.02)
    print(refused(port), uvicorn.exits)

uvicorn = Uvicorn()
signal.signal(signal.SIGTERM, uvicorn.handle_exit)
asyncio.run(main(uvicorn))
"""


def test_on_sigterm_the_api_worker_refuses_new_connections_then_lets_uvicorn_exit():
    # in a process of its own: a real SIGTERM, and nothing from other tests in it
    proc = subprocess.run([sys.executable, "-c", _API_WORKER_GETS_SIGTERM], cwd=ROOT, timeout=60,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "1"]  # refused once the loop turned; uvicorn told once
