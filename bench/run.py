"""Measure the service side by side with its ceiling and a naive server, in one run.

    python -m bench.run [--checkpoint FILE] [--seconds 20] [--out bench/results]

a. ceiling: the runner's engine in-process (precision auto), images/s at batch sizes 1..batch_size;
b. the service over HTTP (`bentoml serve`, /api/unet/segment, JSON base64), closed loop, concurrency
   1/8/32, once per precision: auto (int8 where its start-up trial finds it agrees and is faster here),
   then fp32, bf16 (only where the CPU has AVX512-BF16/AMX) and forced int8, each that auto did not pick;
c. the naive peer (bench/naive_server.py) under the same load;
d. per-request pipeline costs in microseconds, and the API's own CPU per image in-process on the JSON and
   the binary path (bench/api_cost.py) beside what each server process spent per request under load;
   what /tryon and return_nails cost the API per photo at 1 MP and 12 MP, beside /mask.
Same checkpoint, same photos (real, mixed sizes), loopback only, bounded in time (~10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import psutil
import torch

from bench.api_cost import (
    api_costs,
    json_answer,
    json_request,
    model_probabilities,
    product_costs,
    product_photos,
)
from bench.load import LoadResult, closed_loop
from bench.photos import ROOT, load_photos
from nailseg.config import load_settings
from nailseg.images import postprocess
from nailseg.images.codec import b64_png, decode_base64, decode_image, decode_reduced
from nailseg.images.resize import resize_to_model
from nailseg.inference.hardware import (
    cpu_bf16_flags,
    cpu_has_fast_bf16,
    cpu_int8_flags,
    cpu_model,
    openvino_available,
)
from nailseg.store.quantize import nncf_available
from training.evaluate import engine_for

BATCH_PER_REQUEST = 8  # images per /segment-batch request in the batching client's measurement


def ceiling(engine, photos: list[bytes], seconds: float, sizes=None) -> list[dict]:
    """The runner's own path in-process: images/s at batch sizes 1, 2, 4, .. batch_size."""
    inputs = np.stack([resize_to_model(decode_image(p, 10**8), engine.prep.image_size) for p in photos])
    results = []
    for n in sizes or [2**k for k in range(engine.batch_size.bit_length()) if 2**k <= engine.batch_size]:
        batch = np.resize(inputs, (n, *inputs.shape[1:]))
        for _ in range(3):  # first calls at a new shape pay one-off kernel selection
            engine.infer(batch)
        done, started, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - started < seconds:
            engine.infer(batch)
            done += n
        results.append({"batch": n, "images_per_s": done / (time.perf_counter() - started),
                        "cpu_ms_per_image": 1000 * (time.process_time() - cpu) / done})
    return results


def pipeline_ceiling(engine, bodies: list[bytes], seconds: float, threads: int | None = None) -> dict:
    """The whole /segment path in one process, no HTTP and no runner hop: JSON bodies -> decode and
    resize -> the engine at its batch size -> mask, PNG, response JSON; ``threads`` (default: one a
    core) loops side by side, as the API's and runner's threads would. What the service could reach
    on this machine if serving cost nothing."""
    threads = threads or os.cpu_count()
    n = engine.batch_size
    batches = [[bodies[(k * n + i) % len(bodies)] for i in range(n)] for k in range(len(bodies))]

    def one_batch(k: int) -> None:
        parsed = [json_request(b, engine.prep) for b in batches[k % len(batches)]]
        probs = engine.infer(np.stack([p.model_input for _, p in parsed]))
        for (request, prepared), prob in zip(parsed, probs):
            json_answer(request, prepared, prob)

    one_batch(0)
    done, stop_at = [0] * threads, time.perf_counter() + seconds

    def loop(t: int) -> None:
        k = t
        while time.perf_counter() < stop_at:
            one_batch(k)
            done[t] += n
            k += threads

    started, cpu = time.perf_counter(), psutil.Process().cpu_times()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(loop, range(threads)))
    elapsed, used = time.perf_counter() - started, psutil.Process().cpu_times()
    images = sum(done)
    return {"batch": n, "threads": threads, "images_per_s": images / elapsed,
            "cpu_ms_per_image": 1000 * (used.user + used.system - cpu.user - cpu.system) / images}


def backend_comparison(checkpoint: Path, photos: list[bytes], settings, seconds: float) -> list[dict]:
    """The candidate CPU paths side by side: images/s at batch 1 and at the largest batch."""
    results = []
    settings = settings.model_copy(update={"model": settings.model.model_copy(update={"device": "cpu"})})
    for backend in ("torch", "openvino"):
        if backend == "openvino" and not openvino_available():
            continue
        precisions = ["fp32", "bf16"] if cpu_has_fast_bf16() else ["fp32"]
        if backend == "openvino" and nncf_available():
            precisions.append("int8")
        for precision in precisions:
            engine = engine_for(checkpoint, settings.with_inference(backend=backend, precision=precision))
            for row in ceiling(engine, photos, seconds, sizes=(1, engine.batch_size)):
                results.append({"backend": backend, "precision": precision, **row})
                print(f"  {backend:8s} {precision} batch {row['batch']}: {row['images_per_s']:.1f} img/s", flush=True)
    return results


def pipeline_costs(engine, photo: bytes, repeats: int = 30) -> dict[str, float]:
    """Median microseconds of each step for one photo."""
    text = base64.b64encode(photo).decode()
    steps = {}

    def timed(name, fn):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            value = fn()
            times.append(time.perf_counter() - t)
        steps[name] = float(np.median(times) * 1e6)
        return value

    raw = timed("base64_decode", lambda: decode_base64(text))
    timed("image_decode_full", lambda: decode_image(raw, 10**8))
    rgb, size = timed("image_decode_reduced", lambda: decode_reduced(raw, 10**8, max(engine.prep.image_size)))
    small = timed("resize_to_model", lambda: resize_to_model(rgb, engine.prep.image_size))
    prob = timed("model_batch1", lambda: engine.infer(small[None])[0])
    full = timed("probability_resize", lambda: postprocess.probability_at(prob, *size))
    mask = timed("threshold", lambda: postprocess.mask_from(full, 0.5))
    timed("png_encode_base64", lambda: b64_png(mask))
    timed("png_encode_libpng_before", lambda: cv2.imencode(".png", mask))  # the encoder until 2026-11-29
    timed("contours", lambda: postprocess.contours(mask))
    steps["image_size"] = f"{size[1]}x{size[0]}"
    return steps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited during start-up")
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError("server did not start")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def server_cpu(proc: subprocess.Popen) -> dict[str, float]:
    """CPU seconds used so far by each process of a server, by role (BentoML's --service-name)."""
    used: dict[str, float] = {}
    root = psutil.Process(proc.pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            cmd, t = p.cmdline(), p.cpu_times()
        except psutil.Error:
            continue
        role = cmd[cmd.index("--service-name") + 1] if "--service-name" in cmd else "main"
        used[role] = used.get(role, 0.0) + t.user + t.system
    return used


def accounted_load(url: str, bodies: list[bytes], concurrency: int, seconds: float,
                   proc: subprocess.Popen) -> LoadResult:
    """``closed_loop``, with each server process's CPU per request filled in."""
    before = server_cpu(proc)
    r = closed_loop(url, bodies, concurrency, seconds)
    after = server_cpu(proc)
    r.server_cpu_ms_per_request = {k: 1000 * (after[k] - before.get(k, 0.0)) / max(r.requests, 1) for k in after}
    return r


def run_load(name: str, url: str, bodies: list[bytes], levels: list[int], seconds: float,
             proc: subprocess.Popen) -> list[LoadResult]:
    """Each level in turn, then concurrency 1 again: does latency at low load recover after a burst?

    Also accounts the CPU each server process and the load generator spend per request: on a
    machine whose cores they share, that sum bounds the throughput.
    """
    results = []
    for i, c in enumerate([*levels, 1]):
        r = accounted_load(url, bodies, c, seconds if i < len(levels) else seconds / 2, proc)
        label = f"c={c}" if i < len(levels) else "c=1 after"
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in [*r.server_cpu_ms_per_request.items(),
                                                     ("client", r.client_cpu_ms_per_request)])
        print(f"  {name:8s} {label:9s} {r.images_per_s:7.1f} img/s  p50 {r.p50_ms:7.1f}  p95 {r.p95_ms:7.1f}  "
              f"p99 {r.p99_ms:7.1f} ms  errors {r.errors}/{r.requests}  CPU ms/request: {cpu}", flush=True)
        results.append(r)
    return results


def import_model(checkpoint: Path) -> dict[str, str]:
    """A fresh model store with ``checkpoint`` imported (int8 gate included); the environment to serve it."""
    home = Path(tempfile.mkdtemp(prefix="bench_bentoml_"))
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    out = subprocess.run([sys.executable, "-m", "models_import", "--checkpoint", str(checkpoint)], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True).stdout
    print("  " + out.strip().replace("\n", "\n  "), flush=True)
    return env


def bench_service(env: dict[str, str], precision: str, bodies, levels, seconds,
                  log_dir: Path) -> tuple[dict, list[LoadResult]]:
    """The service at this ``inference.precision``: what /model-info says it serves and why, and the load results."""
    port = free_port()
    env = {**env, "UNET_INFERENCE_PRECISION": precision}
    with (log_dir / f"service-{precision}.log").open("w") as log:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "bentoml"), "serve", ".", "--port", str(port),
                                 "--host", "127.0.0.1"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200, proc)
        info = httpx.get(f"http://127.0.0.1:{port}/api/unet/model-info", timeout=30).json()
        served = {k: info.get(k) for k in ("precision", "precision_reason", "backend", "int8_gate")}
        print(f"  service, precision {precision}: serves {served['precision']} ({served['precision_reason']})", flush=True)
        rows = run_load(f"svc {served['precision']}", f"http://127.0.0.1:{port}/api/unet/segment", bodies,
                        levels, seconds, proc)
        served["segment_batch"] = batch_load(f"http://127.0.0.1:{port}/api/unet/segment-batch", bodies,
                                             max(levels), seconds, proc)
        return served, rows
    finally:
        stop(proc)


def batch_load(url: str, bodies: list[bytes], images_in_flight: int, seconds: float, proc: subprocess.Popen,
               per_request: int = BATCH_PER_REQUEST) -> dict:
    """The same photos sent to /segment-batch, ``per_request`` a request, with as many images in flight
    as the top /segment level: what a client that batches pays per image, in throughput and server CPU."""
    images = [{"image_data": json.loads(b)["image_data"]} for b in bodies]
    images *= per_request  # so that every request is full
    batches = [json.dumps({"images": images[i:i + per_request], "threshold": 0.5}).encode()
               for i in range(0, len(bodies), per_request)]
    r = accounted_load(url, batches, max(1, images_in_flight // per_request), seconds, proc)
    out = {"images_per_request": per_request, "concurrency": r.concurrency, "errors": r.errors,
           "images_per_s": r.images_per_s * per_request, "p50_ms_per_request": r.p50_ms,
           "cpu_ms_per_image": {k: v / per_request for k, v in r.server_cpu_ms_per_request.items()}}
    print(f"  segment-batch, {per_request} images a request, c={r.concurrency}: {out['images_per_s']:.1f} img/s, "
          f"errors {r.errors}/{r.requests}, CPU ms/image: " + ", ".join(
              f"{k} {v:.1f}" for k, v in out["cpu_ms_per_image"].items()), flush=True)
    return out


def other_precisions(auto: str) -> list[str]:
    """The forced precisions to serve beside ``auto`` (skipping the one it picked), with a line for each skipped."""
    wanted = ["fp32"]
    if cpu_bf16_flags():
        wanted.append("bf16")
    else:
        print("  bf16: skipped, the CPU has no AVX512-BF16/AMX (OpenVINO would emulate it, slower than fp32)")
    if nncf_available() and openvino_available():
        wanted.append("int8")
        if auto != "int8":
            print("  int8: served forced; auto's start-up trial did not pick it here (see its precision_reason)")
    else:
        print("  int8: skipped, needs openvino and nncf")
    return [p for p in wanted if p != auto]


def bench_naive(checkpoint: Path, bodies, levels, seconds, log_dir: Path) -> list[LoadResult]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/unet/segment"
    with (log_dir / "naive.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bench.naive_server", "--checkpoint", str(checkpoint),
                                 "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_until(lambda: httpx.post(url, content=bodies[0], timeout=60).status_code == 200, proc)
        return run_load("naive", url, bodies, levels, seconds, proc)
    finally:
        stop(proc)


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, style in (("service", "o-"), ("naive", "s--")):
        rows = report[name]
        c = [r["concurrency"] for r in rows]
        left.plot(c, [r["images_per_s"] for r in rows], style, label=name)
        right.plot(c, [r["p95_ms"] for r in rows], style, label=name)
    left.axhline(report["ceiling_best"], color="grey", linestyle=":", label="ceiling (in-process)")
    left.set(xscale="log", xlabel="concurrency", ylabel="images/s", title="throughput")
    right.set(xscale="log", yscale="log", xlabel="concurrency", ylabel="p95 latency (ms)", title="p95 latency")
    for ax in (left, right):
        ax.set_xticks(report["levels"], [str(v) for v in report["levels"]])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{report['model']} on {report['machine']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def print_precisions(by_precision: dict[str, dict], naive_top: LoadResult) -> None:
    """One row per precision setting: what it served and why, throughput, latency, CPU per request by process."""
    print("\n| precision setting | served (why) | img/s at c = " + " / ".join(
        str(r.concurrency) for r in by_precision["auto"]["load"][:-1]) + " | p50 ms c=1 | errors | "
        "CPU ms/request at top c: API / runner | service / naive at top c | ceilings img/s: model / pipeline | "
        "service / model ceiling | service / pipeline ceiling | segment-batch x8: img/s, API CPU ms/image |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for setting, v in by_precision.items():
        rows, top = v["load"][:-1], v["load"][-2]
        cpu = top.server_cpu_ms_per_request
        model, whole = v["ceiling_model"]["images_per_s"], v["ceiling_pipeline"]["images_per_s"]
        print(f"| {setting} | {v['precision']} ({v['precision_reason']}) | "
              + " / ".join(f"{r.images_per_s:.1f}" for r in rows) + f" | {rows[0].p50_ms:.0f} | "
              f"{sum(r.errors for r in v['load'])} | {cpu.get('unet_api', 0):.1f} / {cpu.get('unet_runner', 0):.1f} | "
              f"{top.images_per_s / max(naive_top.images_per_s, 1e-9):.1f}x | {model:.1f} / {whole:.1f} | "
              f"{top.images_per_s / model:.2f} | {top.images_per_s / whole:.2f} | "
              f"{v['segment_batch']['images_per_s']:.1f}, {v['segment_batch']['cpu_ms_per_image'].get('unet_api', 0):.1f} |")


def ceilings(checkpoint: Path, settings, precision: str, bodies, photos, seconds: float) -> dict:
    """In-process ceilings for the engine the service builds at this precision: the model alone at each
    batch size and its best, and the whole /segment path (``pipeline_ceiling``)."""
    engine = engine_for(checkpoint, settings.with_inference(precision=precision))
    batches = ceiling(engine, photos, seconds)
    model = max(batches, key=lambda r: r["images_per_s"])
    whole = pipeline_ceiling(engine, bodies, seconds)
    print(f"  {precision} ({engine.precision}): model " + ", ".join(
          f"batch {r['batch']}: {r['images_per_s']:.1f}" for r in batches) + " img/s; whole pipeline "
          f"{whole['images_per_s']:.1f} img/s ({whole['cpu_ms_per_image']:.1f} ms CPU/image)", flush=True)
    return {"ceiling_batches": batches, "ceiling_model": model, "ceiling_pipeline": whole}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=ROOT / "models/unet/checkpoints/best_model.pth")
    p.add_argument("--photos", type=int, default=16)
    p.add_argument("--seconds", type=float, default=20, help="per load level")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    photos = load_photos(args.photos)
    bodies = [json.dumps({"image_data": base64.b64encode(ph).decode(), "threshold": 0.5}).encode() for ph in photos]
    settings = load_settings()
    engine = engine_for(args.checkpoint, settings)
    device, backend, precision = engine.device, engine.backend.name, engine.precision
    flip = engine.test_time_flip
    print(f"engine: {device} {backend} {engine.mode}, input {engine.prep.image_size}, batch {engine.batch_size}")

    print("CPU flags: " + (", ".join(cpu_int8_flags() + cpu_bf16_flags()) or "no VNNI/AMX/AVX512-BF16")
          + f"; engine precision {precision}: {engine.precision_reason}")
    costs = pipeline_costs(engine, photos[2])
    print("pipeline costs (us):", {k: (round(v) if isinstance(v, float) else v) for k, v in costs.items()})
    api_cpu = api_costs(photos, engine.prep, model_probabilities(engine, photos))
    print("API CPU per image in-process (us, model excluded): " + ", ".join(f"{k} {v:,.0f}" for k, v in api_cpu.items()))
    sized = product_photos(photos[:4])
    products = product_costs(sized, engine.prep, {k: model_probabilities(engine, v) for k, v in sized.items()})
    for size, v in products.items():
        print(f"API CPU per photo at {size}, beside /mask (ms): " + ", ".join(f"{k[:-3]} {us / 1000:,.1f}"
                                                                            for k, us in v.items()))
    del engine
    print("CPU paths:")
    paths = backend_comparison(args.checkpoint, photos, settings, seconds=min(args.seconds / 4, 5))

    print("service, each precision right after its in-process ceilings (this machine's speed drifts by minutes):")
    env = import_model(args.checkpoint)

    def measured(setting: str) -> dict:
        limits = ceilings(args.checkpoint, settings, setting, bodies, photos, min(args.seconds / 2, 10))
        served, rows = bench_service(env, setting, bodies, args.levels, args.seconds, args.out)
        return {**served, "load": rows, **limits}

    by_precision = {"auto": measured("auto")}
    for forced in other_precisions(by_precision["auto"]["precision"]):
        by_precision[forced] = measured(forced)
    service = by_precision["auto"]["load"]
    naive = bench_naive(args.checkpoint, bodies, args.levels, args.seconds, args.out)

    ceil, best_row = by_precision["auto"]["ceiling_batches"], by_precision["auto"]["ceiling_model"]
    best = best_row["images_per_s"]
    (service, service_after), (naive, naive_after) = (service[:-1], service[-1]), (naive[:-1], naive[-1])
    top_s, top_n = service[-1], naive[-1]
    report = {
        "model": args.checkpoint.name, "machine": f"{cpu_model()}, {os.cpu_count()} cores, "
        f"{'AVX512-BF16/AMX' if cpu_has_fast_bf16() else 'no fast bf16'}, torch {torch.__version__}",
        "levels": args.levels, "photos": args.photos, "seconds_per_level": args.seconds,
        "cpu_flags": {"int8": cpu_int8_flags(), "bf16": cpu_bf16_flags()},
        "engine": {"device": str(device), "backend": backend, "precision": precision, "test_time_flip": flip},
        "pipeline_costs_us": costs, "api_cpu_in_process_us": api_cpu, "product_costs_us": products,
        "service_by_precision": {k: {**v, "load": [r.model_dump() for r in v["load"]]} for k, v in by_precision.items()}, "cpu_paths": paths, "ceiling": ceil, "ceiling_best": best,
        "service": [r.model_dump() for r in service], "naive": [r.model_dump() for r in naive],
        "after_burst_c1": {"service": service_after.model_dump(), "naive": naive_after.model_dump()},
        "ratios": {
            f"service_c{top_s.concurrency}_over_ceiling": top_s.images_per_s / best,
            f"service_c{top_s.concurrency}_over_naive": top_s.images_per_s / max(top_n.images_per_s, 1e-9),
            "p50_c1_service_over_naive": service[0].p50_ms / naive[0].p50_ms,
            "p50_c1_after_burst_over_fresh_service": service_after.p50_ms / service[0].p50_ms,
            **{f"{setting}_service_c{top_s.concurrency}_over_{kind}_ceiling":
               v["load"][-2].images_per_s / v[f"ceiling_{kind}"]["images_per_s"]
               for setting, v in by_precision.items() for kind in ("model", "pipeline")},
            **{f"{setting}_segment_batch_x{BATCH_PER_REQUEST}_over_model_ceiling":
               v["segment_batch"]["images_per_s"] / v["ceiling_model"]["images_per_s"] for setting, v in by_precision.items()},
            **{f"{setting}_api_cpu_per_image_segment_batch_x{BATCH_PER_REQUEST}_over_segment":
               v["segment_batch"]["cpu_ms_per_image"].get("unet_api", 0) / max(v["load"][-2].server_cpu_ms_per_request.get("unet_api", 0), 1e-9)
               for setting, v in by_precision.items()},
        },
    }
    print("\n| concurrency | service img/s | p50 / p95 / p99 ms | errors | naive img/s | p50 / p95 / p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for s, n in zip(service, naive):
        print(f"| {s.concurrency} | {s.images_per_s:.1f} | {s.p50_ms:.0f} / {s.p95_ms:.0f} / {s.p99_ms:.0f} | "
              f"{s.errors} | {n.images_per_s:.1f} | {n.p50_ms:.0f} / {n.p95_ms:.0f} / {n.p99_ms:.0f} | {n.errors} |")
    s, n = service_after, naive_after
    print(f"| 1, after the burst | {s.images_per_s:.1f} | {s.p50_ms:.0f} / {s.p95_ms:.0f} / {s.p99_ms:.0f} | "
          f"{s.errors} | {n.images_per_s:.1f} | {n.p50_ms:.0f} / {n.p95_ms:.0f} / {n.p99_ms:.0f} | {n.errors} |")
    spent = {**top_s.server_cpu_ms_per_request, "client": top_s.client_cpu_ms_per_request}
    report["cpu_per_image_ms"] = {"ceiling_model": best_row["cpu_ms_per_image"],
                                  f"service_c{top_s.concurrency}": spent,
                                  "cores": os.cpu_count(),
                                  "service_bound_images_per_s": os.cpu_count() * 1000 / sum(spent.values())}
    print(f"\nCPU ms per image: in-process model {best_row['cpu_ms_per_image']:.1f}; service at "
          f"c={top_s.concurrency}: " + ", ".join(f"{k} {v:.1f}" for k, v in spent.items()) +
          f" = {sum(spent.values()):.1f}, so {os.cpu_count()} busy cores allow at most "
          f"{report['cpu_per_image_ms']['service_bound_images_per_s']:.1f} img/s")
    print(f"ceiling (best batch): {best:.1f} img/s")
    print_precisions(by_precision, top_n)
    for k, v in report["ratios"].items():
        print(f"{k}: {v:.2f}")
    (args.out / "benchmark.json").write_text(json.dumps(report, indent=2))
    chart(report, args.out / "benchmark.png")
    print(f"wrote {args.out / 'benchmark.json'} and {args.out / 'benchmark.png'}")


if __name__ == "__main__":
    main()
