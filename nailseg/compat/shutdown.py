"""Shutdown in the right order under `bentoml serve` (circus), without changing BentoML.

On SIGTERM circus signals every worker at once (and `kill -TERM -<pgid>` does too), while the serve
arbiter (and the runner worker, which inherits it) keep the API's listening socket open until the very
end. Left alone that means: the runner exits while the API still has requests that need it, and once
uvicorn stops accepting, the kernel keeps completing connections to the API's port that nobody will
ever answer (they are reset when the last holder closes the socket). So:

- the API worker, on SIGTERM, at its event loop's next turn: stops its asyncio servers accepting,
  accepts what the kernel already queued and hands it to them (answered, not reset), and shuts the
  shared listening socket down (``shutdown(SHUT_RD)`` on a listening socket stops it listening for
  every process holding it): from then on new connections are refused at once. Then uvicorn's own
  shutdown runs; requests in flight finish;
- the runner worker, on SIGTERM, keeps serving until its sibling workers (the API) have exited,
  at most ``drain_s`` seconds, and only then lets uvicorn stop it;
- the serve process itself (the arbiter) removes the directory of the runners' unix sockets only once
  every worker has stopped: BentoML removes it the moment SIGTERM arrives, after which each API call
  to the runner that needs a new connection fails (the socket file is gone) although the runner serves.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Callable, Sequence

log = logging.getLogger("unet.shutdown")
# Between refusing new connections and uvicorn's shutdown, which closes every connection that has no request
# under way: time for the ones just accepted (or handed over) to have their request read.
_HANDOVER_S = 0.2


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


def stop_listening(fd: int, servers: Sequence[asyncio.AbstractServer] = (),
                   protocol: Callable[[], asyncio.Protocol] | None = None) -> None:
    """Make the listening socket ``fd`` refuse new connections, for every process that holds it.

    ``servers`` (the servers accepting on it, in this thread's running loop) stop accepting first; with
    their ``protocol`` factory, the connections the kernel had already completed are accepted and
    served with it, so that they are answered, not reset by the shutdown.
    """
    try:
        listener = socket.socket(fileno=os.dup(fd))  # before the servers close ``fd`` itself
    except OSError:
        return
    for server in servers:
        server.close()
    with listener:
        queued = _accept_queued(listener) if protocol is not None else []
        try:
            listener.shutdown(socket.SHUT_RD)
            log.info("stopped accepting connections (%d queued, handed over)", len(queued))
        except OSError:  # already shut down by another worker, or not a listening socket
            pass
    if queued:
        loop = asyncio.get_running_loop()
        for conn in queued:
            loop.create_task(loop.connect_accepted_socket(protocol, conn))


def _accept_queued(listener: socket.socket) -> list[socket.socket]:
    listener.setblocking(False)
    queued = []
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:  # BlockingIOError: nothing (more) queued
            return queued
        conn.setblocking(False)
        queued.append(conn)


def uvicorn_protocol(server) -> Callable[[], asyncio.Protocol] | None:
    """The connection protocol a running ``uvicorn.Server`` serves with (what its startup hands its loop);
    None for anything that is not a uvicorn server. Its private attributes are read directly: on a uvicorn
    without them this fails loudly (AttributeError), it never skips the hand-over silently."""
    import uvicorn

    if not isinstance(server, uvicorn.Server):
        return None
    config, state, lifespan = server.config, server.server_state, server.lifespan
    return lambda: config.http_protocol_class(config=config, server_state=state, app_state=lifespan.state)


def _serving_server():
    """The server whose SIGTERM handler is installed: uvicorn's is its ``Server.handle_exit`` (its asyncio
    ``servers`` exist only once it listens, so they are read on SIGTERM). A worker where that is not so is
    refused (RuntimeError), rather than left to stop without refusing new connections first."""
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    if server is None or getattr(handler, "__name__", None) != "handle_exit":
        raise RuntimeError(f"the API worker's SIGTERM handler is {handler!r}, not uvicorn's Server.handle_exit: "
                           "nailseg/compat/shutdown.py cannot stop it accepting first")
    return server


def api_stops_accepting_first() -> None:
    """For the API worker (in uvicorn): on SIGTERM the port refuses new connections at once, requests in
    flight finish, then uvicorn stops."""
    fd = _listening_fd()
    uvicorn_server = _serving_server() if fd is not None else None

    def before(exit_now: Callable[[], None]) -> None:
        try:
            loop = asyncio.get_running_loop()  # the signal handler runs on the main thread, the loop's
        except RuntimeError:
            loop = None

        def stop() -> None:
            if fd is not None and loop is not None:
                stop_listening(fd, list(uvicorn_server.servers), uvicorn_protocol(uvicorn_server))
            elif fd is not None:
                stop_listening(fd)
            if loop is None:
                exit_now()
            else:
                loop.call_later(_HANDOVER_S, exit_now)

        if loop is None:
            stop()
        else:  # between two callbacks, not inside whatever the signal interrupted (an accept, say)
            loop.call_soon_threadsafe(stop)

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


def arbiter_removes_sockets_last() -> None:
    """In `bentoml serve`'s own process: run BentoML's arbiter exit stack (``shutil.rmtree`` of the
    runners' unix socket directory, usage tracking) after its event loop has ended, not on SIGTERM.

    BentoML 1.4's ``Arbiter.stop`` runs the exit stack first, then circus stops the workers. Only the
    order is changed; an arbiter that is not the one verified is refused (RuntimeError) rather than patched.
    """
    from bentoml._internal.utils.circus import Arbiter
    from circus.arbiter import Arbiter as CircusArbiter

    if getattr(Arbiter.start, "_unet_sockets_last", False):
        return
    try:
        expected = ("self.exit_stack.__exit__" in inspect.getsource(Arbiter.stop)
                    and "self.exit_stack.__enter__" in inspect.getsource(Arbiter.start))
    except (OSError, TypeError):
        expected = False
    if not expected:
        raise RuntimeError("BentoML's Arbiter.start/stop are not the ones verified (their exit stack moved): "
                           "nailseg/compat/shutdown.py cannot reorder the socket clean-up")
    start = Arbiter.start

    @functools.wraps(start)
    def start_then_clean_up(self, *args, **kwargs):
        try:
            return start(self, *args, **kwargs)  # blocks in the event loop until the workers have stopped
        finally:
            self.exit_stack.__exit__(None, None, None)

    def stop(self):
        return CircusArbiter.stop(self)

    start_then_clean_up._unet_sockets_last = True
    Arbiter.start, Arbiter.stop = start_then_clean_up, stop
