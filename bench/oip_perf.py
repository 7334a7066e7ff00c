"""Triton's load generator, perf_analyzer, against the service's Open Inference Protocol routes.

    python -m bench.oip_perf --url 127.0.0.1:3000 [--photos 16 | --files FILE ...] [--concurrency 1,8,32]
                             [--interval-ms 5000] [-H X-API-Key:KEY] [--out bench/results/oip_perf.json]

Writes perf_analyzer's `--input-data` JSON from real photos (input `image`, BYTES [1], one photo a request,
as /segment takes them), runs perf_analyzer once per concurrency level (its --concurrency-range is
arithmetic, 1/8/32 is not) and parses its CSV (-f, --verbose-csv) into one row per level: images/s,
p50/p90/p95/p99 and average latency in ms, and perf_analyzer's own CPU per request (it shares the cores).

What perf_analyzer does against a server (perf_analyzer 2.60, `-i http`, service kind triton):
- GET /v2/models/unet (model metadata; with `-x V`: /v2/models/unet/versions/V), then
  GET /v2/models/unet/config (Triton's model configuration: it stops with "failed to get model config"
  without it; nailseg.api.metadata.model_config builds it), GET /v2 (server metadata), then POSTs
  /v2/models/unet/infer. No health route is called.
- Every request asks for every output the metadata lists (mask, nail_count, probability), each binary; no
  flag narrows that, so its numbers include the probability map's transfer. `--request-parameter` (the
  threshold) works over gRPC only; `-H Header:Value` adds a header (an API key).
- BYTES from `{"b64": ...}` in --input-data are sent as they decode: they must already be the binary
  tensor form (a 4-byte little-endian length, then the photo), which `write_input_data` writes.
- A level that does not stabilise (--stability-percentage within --max-trials windows) exits 2 with no
  CSV: it is recorded with its error and the next level runs.

perf_analyzer comes in PyPI's `perf-analyzer` wheel, built for glibc 2.38 (manylinux_2_38); where pip
finds only the 0.1.0 placeholder (an older glibc, as Debian 12's), bench/install_perf_analyzer.sh puts the
binary with a newer glibc in a folder of its own. The binary is looked for in $PERF_ANALYZER, on PATH,
then in that folder.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALLED = ROOT / ".cache" / "perf_analyzer" / "perf_analyzer"


def find_perf_analyzer() -> str | None:
    """The perf_analyzer command: $PERF_ANALYZER, then PATH (a working binary, not the placeholder), then
    bench/install_perf_analyzer.sh's folder."""
    for candidate in (os.environ.get("PERF_ANALYZER"), shutil.which("perf_analyzer"), str(INSTALLED)):
        if not candidate or not Path(candidate).exists():
            continue
        try:
            probe = subprocess.run([candidate, "--version"], capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if "Perf Analyzer Version" in probe.stdout + probe.stderr:
            return candidate
    return None


def serialize_bytes_element(item: bytes) -> bytes:
    """One BYTES element in the binary tensor data form: a 4-byte little-endian length, then the bytes."""
    return len(item).to_bytes(4, "little") + item


def input_data(photos: list[bytes]) -> dict:
    """perf_analyzer's --input-data JSON: one step per photo (it cycles through them), input `image`,
    shape [1]. b64 content is sent as it decodes, so it holds the length-prefixed element."""
    return {"data": [{"image": {"content": {"b64": base64.b64encode(serialize_bytes_element(p)).decode("ascii")},
                                "shape": [1]}} for p in photos]}


def write_input_data(photos: list[bytes], path: Path) -> Path:
    path.write_text(json.dumps(input_data(photos)))
    return path


def command(binary: str, url: str, data_file: Path, concurrency: int, csv_file: Path, *, model: str = "unet",
            version: str | None = None, interval_ms: int = 5000, stability: float = 30.0, max_trials: int = 10,
            headers: list[str] = ()) -> list[str]:
    cmd = [binary, "-m", model, "-u", url, "-i", "http", "--input-data", str(data_file),
           "--concurrency-range", str(concurrency), "--measurement-interval", str(interval_ms),
           "--stability-percentage", str(stability), "--max-trials", str(max_trials),
           "-f", str(csv_file), "--verbose-csv"]
    if version is not None:
        cmd += ["-x", version]
    for header in headers:
        cmd += ["-H", header]
    return cmd


def parse_csv(text: str) -> list[dict]:
    """perf_analyzer's CSV (latencies in microseconds) as rows with ms and images/s."""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        out = {"concurrency": int(row["Concurrency"]), "images_per_s": float(row["Inferences/Second"])}
        for key, name in (("p50 latency", "p50_ms"), ("p90 latency", "p90_ms"), ("p95 latency", "p95_ms"),
                          ("p99 latency", "p99_ms"), ("Avg latency", "avg_ms"), ("Client Send", "client_send_ms"),
                          ("Client Recv", "client_recv_ms")):
            if row.get(key) not in (None, ""):
                out[name] = float(row[key]) / 1000
        rows.append(out)
    return rows


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_level(binary: str, url: str, data_file: Path, concurrency: int, *, timeout_s: float = 300,
              **options) -> dict:
    """One perf_analyzer run at one concurrency: its CSV row, its CPU per request, or the error."""
    with tempfile.TemporaryDirectory() as tmp:
        csv_file = Path(tmp) / "perf.csv"
        cmd = command(binary, url, data_file, concurrency, csv_file, **options)
        cpu, started = _children_cpu(), time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"concurrency": concurrency, "error": f"perf_analyzer ran past {timeout_s} s"}
        cpu, wall = _children_cpu() - cpu, time.perf_counter() - started
        if proc.returncode != 0 or not csv_file.exists():
            lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
            return {"concurrency": concurrency, "error": " | ".join(lines[-3:]) or f"exit {proc.returncode}"}
        rows = parse_csv(csv_file.read_text())
    row = next((r for r in rows if r["concurrency"] == concurrency), rows[-1] if rows else None)
    if row is None:
        return {"concurrency": concurrency, "error": "perf_analyzer wrote an empty CSV"}
    # perf_analyzer's CPU over its whole run (warm-up and every trial window), per request it sent in that time
    requests = max(row["images_per_s"] * wall, 1.0)
    return {**row, "client_cpu_ms_per_request": 1000 * cpu / requests, "wall_s": wall}


def run(url: str, photos: list[bytes], concurrencies=(1, 8, 32), binary: str | None = None, **options) -> list[dict]:
    binary = binary or find_perf_analyzer()
    if binary is None:
        raise RuntimeError("perf_analyzer not found: set PERF_ANALYZER, or run bench/install_perf_analyzer.sh")
    with tempfile.TemporaryDirectory() as tmp:
        data_file = write_input_data(photos, Path(tmp) / "input.json")
        return [run_level(binary, url, data_file, c, **options) for c in concurrencies]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="127.0.0.1:3000", help="host:port of the service (no scheme)")
    parser.add_argument("--photos", type=int, default=16,
                        help="how many of the bench's photos (bench/photos.py: the ones bench.run sends)")
    parser.add_argument("--files", nargs="*", type=Path, help="send these JPEG/PNG files instead")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--interval-ms", type=int, default=5000, help="perf_analyzer's measurement window")
    parser.add_argument("--stability", type=float, default=30.0, help="perf_analyzer's --stability-percentage")
    parser.add_argument("--max-trials", type=int, default=10)
    parser.add_argument("--version", help="model version (-x): the /versions/{v}/ routes")
    parser.add_argument("-H", dest="headers", action="append", default=[], help="Header:Value, e.g. X-API-Key:KEY")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.files:
        photos = [p.read_bytes() for p in args.files]
    else:
        from bench.photos import load_photos  # real photos at the sizes clients send (OpenCV, no torch)
        photos = load_photos(args.photos)
    rows = run(args.url, photos, [int(c) for c in args.concurrency.split(",")], interval_ms=args.interval_ms,
               stability=args.stability, max_trials=args.max_trials, version=args.version, headers=args.headers)
    for row in rows:
        print(json.dumps(row))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
