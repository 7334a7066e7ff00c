"""Shutdown in the right order under `bentoml serve` (circus), without changing BentoML.

On SIGTERM circus signals every worker at once (and `kill -TERM -<pgid>` does too), while the serve
arbiter keeps the listening sockets open until the very end. Left alone that means: the runner
exits while the API still has requests that need it, and the kernel keeps completing connections
to the API's port that nobody will ever answer. So:

- the API worker, on SIGTERM, lets uvicorn stop accepting and then shuts the shared listening
  socket down (``shutdown(SHUT_RD)`` on a listening socket stops it listening for every process
  holding it): new connections are refused at once instead of hanging; requests in flight finish;
- the runner worker, on SIGTERM, keeps serving until its sibling workers (the API) have exited,
  at most ``drain_s`` seconds, and only then lets uvicorn stop it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Callable

log = logging.getLogger("unet.shutdown")
_LISTENER_CLOSE_DELAY_S = 0.5  # uvicorn closes its asyncio server within ~0.1 s of the signal


def _chain_sigterm(before: Callable[[Callable[[], None]], None]) -> None:
    """Install a SIGTERM handler: ``before(exit_now)``, where exit_now runs the handler there was."""
    if threading.current_thread() is not threading.main_thread():
        log.warning("not on the main thread: shutdown order not installed")
        return
    previous = signal.getsignal(signal.SIGTERM)
    started = threading.Event()

    def exit_now(sig=signal.SIGTERM, frame=None) -> None:
        if callable(previous):
            previous(sig, frame)
        elif previous == signal.SIG_DFL:  # nobody handled it before us: die as SIGTERM would have made us
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    def handler(sig, frame) -> None:
        if started.is_set():
            return exit_now(sig, frame)
        started.set()
        before(lambda: exit_now(sig, frame))

    signal.signal(signal.SIGTERM, handler)


def _listening_fd() -> int | None:
    """The socket BentoML's worker was handed (``--fd N`` on its command line)."""
    args = sys.argv
    for i, arg in enumerate(args[:-1]):
        if arg == "--fd" and args[i + 1].isdigit():
            return int(args[i + 1])
    return None


def stop_listening(fd: int) -> None:
    try:
        dup = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    with dup:
        try:
            dup.shutdown(socket.SHUT_RD)
            log.info("stopped accepting connections")
        except OSError:  # already shut down by another worker, or not a listening socket
            pass


def api_stops_accepting_first() -> None:
    """For the API worker: on SIGTERM, uvicorn drains requests in flight and the port refuses new ones."""
    fd = _listening_fd()

    def before(exit_now: Callable[[], None]) -> None:
        exit_now()  # uvicorn: stop accepting, finish requests in flight
        if fd is not None:
            threading.Timer(_LISTENER_CLOSE_DELAY_S, stop_listening, args=(fd,)).start()

    _chain_sigterm(before)


def _siblings() -> list:
    import psutil

    me = os.getpid()
    try:
        parent = psutil.Process(os.getppid())
        if parent.pid == 1:
            return []
        return [p for p in parent.children() if p.pid != me and p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE]
    except psutil.Error:
        return []


def runner_stops_last(drain_s: float) -> None:
    """For the runner worker: on SIGTERM, serve on until the sibling workers are gone (<= drain_s)."""

    def before(exit_now: Callable[[], None]) -> None:
        def wait() -> None:
            deadline = time.monotonic() + drain_s
            while _siblings() and time.monotonic() < deadline:
                time.sleep(0.2)
            log.info("runner stopping")
            exit_now()

        log.info("SIGTERM: the runner serves until the API has stopped (at most %.0fs)", drain_s)
        threading.Thread(target=wait, name="runner-drain", daemon=True).start()

    _chain_sigterm(before)
