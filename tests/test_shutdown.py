"""The shutdown-order pieces that run inside BentoML's workers, checked on their own."""

from __future__ import annotations

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
