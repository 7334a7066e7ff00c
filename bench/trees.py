"""The service from two checkouts, side by side in one run: what a change did to throughput and to each
process's CPU per request (the API's above all), on the same machine, the same model store and photos.

    python -m bench.trees --base ../base-checkout [--seconds 20] [--rounds 2]

Rounds alternate (base, this tree, base, this tree, ...) so that a machine whose speed drifts over
minutes does not favour either; each round serves /segment at concurrency 8 and 32 and /segment-batch
(8 images a request) and reads every server process's CPU time. Reported: the medians over rounds, and
this tree's ratio to the base.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import sys
from pathlib import Path

import httpx

from bench.photos import ROOT, load_photos
from bench.run import accounted_load, batch_load, free_port, import_model, stop, wait_until


def serve(tree: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "bentoml"), "serve", ".", "--port", str(port),
                                 "--host", "127.0.0.1"], cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(url + "/readyz", timeout=5).status_code == 200, proc)
    return proc, url


def one_round(tree: Path, env: dict[str, str], bodies: list[bytes], seconds: float, log: Path) -> dict:
    proc, url = serve(tree, env, log)
    try:
        row = {}
        for c in (8, 32):
            r = accounted_load(url + "/api/unet/segment", bodies, c, seconds, proc)
            row[f"segment_c{c}"] = {"img_s": r.images_per_s, "errors": r.errors, "p50_ms": r.p50_ms,
                                    "cpu_ms_per_request": r.server_cpu_ms_per_request}
        b = batch_load(url + "/api/unet/segment-batch", bodies, 32, seconds, proc)
        row["batch_x8"] = {"img_s": b["images_per_s"], "errors": b["errors"], "cpu_ms_per_image": b["cpu_ms_per_image"]}
        return row
    finally:
        stop(proc)


def _median(rows: list[dict], *path: str) -> float:
    values = []
    for row in rows:
        v = row
        for key in path:
            v = v[key]
        values.append(v)
    return statistics.median(values)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, required=True, help="the other checkout (e.g. a git worktree of main)")
    p.add_argument("--checkpoint", type=Path, default=ROOT / "models/unet/checkpoints/best_model.pth")
    p.add_argument("--photos", type=int, default=16)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "trees.json")
    args = p.parse_args(argv)
    env = import_model(args.checkpoint)
    bodies = [json.dumps({"image_data": base64.b64encode(ph).decode()}).encode() for ph in load_photos(args.photos)]
    trees = {"base": args.base.resolve(), "this": ROOT}
    rows: dict[str, list[dict]] = {"base": [], "this": []}
    for i in range(args.rounds):
        for name, tree in trees.items():
            row = one_round(tree, env, bodies, args.seconds, args.out.with_name(f"service-{name}-{i}.log"))
            rows[name].append(row)
            print(f"round {i} {name}: " + json.dumps(row), flush=True)
    summary = {}
    for key, metric in [("segment_c8", "img_s"), ("segment_c32", "img_s"), ("batch_x8", "img_s")]:
        summary[f"{key} img/s"] = {n: _median(rows[n], key, metric) for n in rows}
    for key, per in [("segment_c8", "cpu_ms_per_request"), ("segment_c32", "cpu_ms_per_request"),
                     ("batch_x8", "cpu_ms_per_image")]:
        for role in ("unet_api", "unet_runner"):
            summary[f"{key} {role} CPU ms/{per.split('_')[-1]}"] = {n: _median(rows[n], key, per, role) for n in rows}
    for name, values in summary.items():
        values["ratio"] = values["this"] / values["base"] if values["base"] else float("nan")
        print(f"{name:45s} base {values['base']:8.2f}  this {values['this']:8.2f}  ratio {values['ratio']:.3f}")
    args.out.write_text(json.dumps({"trees": {k: str(v) for k, v in trees.items()}, "rounds": rows,
                                    "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
