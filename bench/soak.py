"""Soak a running server: closed-loop load for minutes, optional hot reloads, leaks checked.

    python -m bench.soak --url http://127.0.0.1:8001 --minutes 10 --concurrency 16 --reload-every 60

Sends real photos (examples/ and, where present, the shared data set's test split) to
/api/unet/segment from C clients (each sends its next request when its last one returns), with
``/initialize {"force_reload": true}`` every S seconds. Prints errors by code, p50/p95/p99, and
the RSS and open file descriptors of every server process (the process listening on the URL's
port and all its descendants) after warm-up, every minute, and at the end.

Descriptors are counted in two parts. Sockets come and go with the load: each client connection,
and each keep-alive connection between the API and the runner (one per runner call under way at
the peak, closed ~5 s after it goes idle), so their count at one instant moves by a few with
concurrency. The rest (files, pipes, eventfds, the model's weights, prometheus' files) is what a
leak would grow: ``file_fd_growth`` must be 0. The warm-up (load at the target concurrency and one
reload) opens what is opened once on first use (prometheus' gauge files, the connection pool). The
start and end snapshots are taken between loads (the load's own connections closed), the samples
during it (the API then holds one more socket per client).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import psutil
from pydantic import BaseModel

from bench.load import LoadResult, _run

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("NAILS_DATA", ROOT.parent / "shared" / "data" / "nails-roboflow"))


class ProcessStats(BaseModel):
    pid: int
    role: str  # unet_api, unet_runner, or arbiter
    rss_mb: float
    open_fds: int
    sockets: int  # of open_fds


class Sample(BaseModel):
    t_s: float  # seconds into the soak (after warm-up)
    processes: list[ProcessStats]


class ReloadLog(BaseModel):
    ok: int = 0
    failed: dict[str, int] = {}


class SoakResult(BaseModel):
    command: str
    minutes: float
    concurrency: int
    reload_every_s: float | None
    photos: int
    load: LoadResult
    reloads: ReloadLog
    start: list[ProcessStats]  # after warm-up
    samples: list[Sample]  # every --sample-every seconds during the soak
    end: list[ProcessStats]
    rss_growth_pct: float  # all server processes together, start -> end
    fd_growth: int  # all descriptors, start -> end (sockets included: they follow the load)
    file_fd_growth: int  # descriptors that are not sockets, start -> end: a leak shows here


def photo_bodies(max_data_photos: int) -> list[bytes]:
    paths = sorted((ROOT / "examples").glob("*.jpg"))
    split = DATA / "splits" / "test.txt"
    if split.exists():
        paths += [DATA / "images" / f"{s}.jpg" for s in split.read_text().split()[:max_data_photos]]
    return [json.dumps({"image_data": base64.b64encode(p.read_bytes()).decode()}).encode()
            for p in paths if p.exists()]


def server_processes(port: int) -> list[psutil.Process]:
    """The process listening on ``port`` that started the others (bentoml's arbiter), and its descendants."""
    pids = {c.pid for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid}
    if not pids:
        raise SystemExit(f"error: no process listens on port {port} (run this on the server's machine)")
    root = psutil.Process(min(pids))
    while (parent := root.parent()) is not None and _is_serve(parent):  # up to `bentoml serve` itself
        root = parent
    return [root, *root.children(recursive=True)]


def _is_serve(p: psutil.Process) -> bool:
    try:
        args = p.cmdline()
    except psutil.Error:
        return False
    return "serve" in args and any(a.endswith("bentoml") for a in args)


def _role(p: psutil.Process) -> str:
    args = p.cmdline()
    return args[args.index("--service-name") + 1] if "--service-name" in args[:-1] else "arbiter"


def _sockets(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir() if fds.exists() else ():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:  # closed meanwhile
            pass
    return count


def snapshot(port: int) -> list[ProcessStats]:
    out = []
    for p in server_processes(port):
        try:
            out.append(ProcessStats(pid=p.pid, role=_role(p), rss_mb=round(p.memory_info().rss / 2**20, 1),
                                    open_fds=p.num_fds(), sockets=_sockets(p.pid)))
        except psutil.Error:
            pass
    return out


def sampler(port: int, every: float, samples: list[Sample]):
    async def run() -> None:
        started = time.perf_counter()
        while True:
            await asyncio.sleep(every)
            stats = await asyncio.to_thread(snapshot, port)
            samples.append(Sample(t_s=round(time.perf_counter() - started, 1), processes=stats))
    return run


def together(*tasks):
    """Background tasks for ``_run``, side by side."""
    async def run() -> None:
        await asyncio.gather(*(task() for task in tasks))
    return run


def reloader(base: str, every: float | None, log: ReloadLog):
    async def run() -> None:
        if not every:
            return
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
            await _reload_loop(session, base, every, log)
    return run


async def _reload_loop(session: aiohttp.ClientSession, base: str, every: float, log: ReloadLog) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            async with session.post(base + "/api/unet/initialize", json={"force_reload": True}) as resp:
                body = await resp.read()
                if resp.status == 200:
                    log.ok += 1
                else:
                    code = f"{resp.status} {body[:120]!r}"
                    log.failed[code] = log.failed.get(code, 0) + 1
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            log.failed[type(e).__name__] = log.failed.get(type(e).__name__, 0) + 1


def soak(url: str, minutes: float, concurrency: int, reload_every: float | None, warmup_s: float,
         max_data_photos: int, sample_every: float = 60) -> SoakResult:
    base = url.rstrip("/")
    port = urlparse(base).port or 80
    bodies = photo_bodies(max_data_photos)
    segment = base + "/api/unet/segment"
    warm_log = ReloadLog()
    # warm-up: every code path once (a reload too), so what grows afterwards is growth, not start-up
    asyncio.run(_run(segment, bodies, concurrency, warmup_s, 10**9, reloader(base, warmup_s / 2, warm_log)))
    start = snapshot(port)
    log, samples = ReloadLog(), []
    load = asyncio.run(_run(segment, bodies, concurrency, minutes * 60, 10**9,
                            together(reloader(base, reload_every, log), sampler(port, sample_every, samples))))
    end = snapshot(port)
    rss0, rss1 = sum(s.rss_mb for s in start), sum(s.rss_mb for s in end)
    return SoakResult(command=" ".join(["python -m bench.soak", *sys.argv[1:]]), minutes=minutes,
                      concurrency=concurrency, reload_every_s=reload_every, photos=len(bodies), load=load,
                      reloads=log, start=start, samples=samples, end=end,
                      rss_growth_pct=round(100 * (rss1 - rss0) / rss0, 2),
                      fd_growth=sum(s.open_fds for s in end) - sum(s.open_fds for s in start),
                      file_fd_growth=sum(s.open_fds - s.sockets for s in end)
                      - sum(s.open_fds - s.sockets for s in start))


def report(r: SoakResult) -> str:
    lines = [f"{r.load.requests} requests in {r.load.seconds:.0f}s at concurrency {r.concurrency} "
             f"({r.photos} photos), {r.load.errors} errors {r.load.errors_by_code or ''}",
             f"latency p50 {r.load.p50_ms:.0f} ms, p95 {r.load.p95_ms:.0f} ms, p99 {r.load.p99_ms:.0f} ms",
             f"reloads: {r.reloads.ok} ok, failed {r.reloads.failed or 0}",
             "process        pid      RSS MB start -> end    fds start -> end (sockets)"]
    ends = {s.pid: s for s in r.end}
    for s in r.start:
        e = ends.get(s.pid)
        lines.append(f"{s.role:<12} {s.pid:>7}   {s.rss_mb:>8.1f} -> {e.rss_mb if e else float('nan'):>8.1f}"
                     f"   {s.open_fds:>4} ({s.sockets}) -> {e.open_fds if e else -1:>4} ({e.sockets if e else -1})")
    lines.append("fds (sockets)" + "".join(f"{s.role:>14}" for s in r.start))
    for t, stats in [(0.0, r.start), *((x.t_s, x.processes) for x in r.samples), (r.load.seconds, r.end)]:
        by_pid = {s.pid: f"{s.open_fds} ({s.sockets})" for s in stats}
        lines.append(f"{t:>12.0f}s" + "".join(f"{by_pid.get(s.pid, '-'):>14}" for s in r.start))
    lines.append(f"RSS growth {r.rss_growth_pct:+.2f}% (all processes); fd growth {r.fd_growth:+d}, "
                 f"of which not sockets {r.file_fd_growth:+d}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="the running server, e.g. http://127.0.0.1:8001")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--reload-every", type=float, default=None, metavar="S",
                    help="POST /initialize {force_reload: true} every S seconds")
    ap.add_argument("--warmup", type=float, default=60, metavar="S", help="seconds of load before the start snapshot")
    ap.add_argument("--data-photos", type=int, default=32, help="photos taken from the shared data set's test split")
    ap.add_argument("--sample-every", type=float, default=60, metavar="S",
                    help="seconds between the RSS and descriptor samples during the soak")
    ap.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = ap.parse_args(argv)
    result = soak(args.url, args.minutes, args.concurrency, args.reload_every, args.warmup, args.data_photos,
                  args.sample_every)
    print(report(result))
    if args.out:
        args.out.write_text(result.model_dump_json(indent=2) + "\n")


if __name__ == "__main__":
    main()
