"""The shutdown-order pieces that run inside BentoML's workers, checked on their own."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys

import pytest
from conftest import ROOT

from nailseg.compat import shutdown


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
            "from nailseg.compat import shutdown\n"
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
        shutdown.stop_listening(listener.fileno(), [server], _Answer)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        return await asyncio.gather(*(loop.run_in_executor(None, _answer_to, conn) for conn in queued))

    assert asyncio.run(main()) == [b"ok:0", b"ok:1", b"ok:2"]


_API_WORKER_GETS_SIGTERM = """
import asyncio, os, signal, socket, sys
from nailseg.compat import shutdown

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


_UVICORN_WITH_QUEUED_CONNECTIONS = """
import asyncio, socket, sys, threading
import uvicorn
from nailseg.compat import shutdown

async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})

def answer(conn, out):
    conn.settimeout(10)
    try:
        out.append(b"".join(iter(lambda: conn.recv(1024), b"")))
    except OSError as e:
        out.append(repr(e).encode())

async def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, loop=sys.argv[1], lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        await asyncio.sleep(0.01)
    # no await from here on: uvicorn accepts nothing, the connections wait in the kernel's queue
    queued = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    for conn in queued:
        conn.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    shutdown.stop_listening(listener.fileno(), server.servers, shutdown.uvicorn_protocol(server))
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5)
        print("accepted")
    except ConnectionRefusedError:
        print("refused")
    answers = []
    readers = [threading.Thread(target=answer, args=(conn, answers)) for conn in queued]
    for reader in readers:
        reader.start()
    while len(answers) < len(queued):
        await asyncio.sleep(0.05)
    server.should_exit = True
    await serving
    for a in answers:
        print(a.split(b"\\r\\n", 1)[0].decode(), b"served" in a)

if sys.argv[1] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_under_uvicorn_queued_connections_are_served_by_it(loop):
    pytest.importorskip(loop)
    proc = subprocess.run([sys.executable, "-c", _UVICORN_WITH_QUEUED_CONNECTIONS, loop], cwd=ROOT, timeout=60,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == ["refused"] + ["HTTP/1.1 200 OK True"] * 3, proc.stdout + proc.stderr[-2000:]
