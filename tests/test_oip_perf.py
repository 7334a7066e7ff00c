"""bench/oip_perf.py: perf_analyzer's input data and CSV, and (where perf_analyzer is installed, see
bench/install_perf_analyzer.sh) a short run against a stand-in server that answers with the codec's
metadata, model configuration and responses: what perf_analyzer needs from the real routes."""

from __future__ import annotations

import base64
import os

import orjson
import pytest
from conftest import ROOT

from bench import oip_perf
from nailseg.oip import decoding

pytestmark = pytest.mark.e2e

PHOTOS = [p.read_bytes() for p in sorted((ROOT / "examples").glob("*.jpg"))[:2]]


def test_input_data_holds_length_prefixed_photos():
    data = oip_perf.input_data(PHOTOS)
    assert len(data["data"]) == len(PHOTOS)
    for step, photo in zip(data["data"], PHOTOS):
        assert step["image"]["shape"] == [1]
        raw = base64.b64decode(step["image"]["content"]["b64"])
        assert raw[:4] == len(photo).to_bytes(4, "little") and raw[4:] == photo
        # what perf_analyzer then sends is a valid binary BYTES tensor for the codec
        head = orjson.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                             "parameters": {"binary_data_size": len(raw)}}]})
        assert decoding.parse_infer_request(head + raw, len(head), max_images=1).images == [photo]


def test_parse_csv_verbose():
    text = ("Concurrency,Inferences/Second,Client Send,Client Recv,p50 latency,p90 latency,p95 latency,"
            "p99 latency,Avg latency,request/response,response wait\n8,5820.46,17,0,1182,2320,2398,2551,1364,17,1346\n")
    (row,) = oip_perf.parse_csv(text)
    assert row == {"concurrency": 8, "images_per_s": 5820.46, "p50_ms": 1.182, "p90_ms": 2.32, "p95_ms": 2.398,
                   "p99_ms": 2.551, "avg_ms": 1.364, "client_send_ms": 0.017, "client_recv_ms": 0.0}


def test_command_line():
    cmd = oip_perf.command("pa", "127.0.0.1:3000", ROOT / "in.json", 8, ROOT / "o.csv", version="2",
                           headers=["X-API-Key:k"])
    assert cmd[:7] == ["pa", "-m", "unet", "-u", "127.0.0.1:3000", "-i", "http"]
    assert cmd[cmd.index("--concurrency-range") + 1] == "8" and cmd[cmd.index("-x") + 1] == "2"
    assert cmd[cmd.index("-H") + 1] == "X-API-Key:k" and "--verbose-csv" in cmd


def test_perf_analyzer_runs_against_the_service(server):
    binary = oip_perf.find_perf_analyzer()
    if binary is None:
        if os.environ.get("CI") == "true":  # .ci/run installs it (bench/install_perf_analyzer.sh)
            pytest.fail("perf_analyzer is not installed")
        pytest.skip("perf_analyzer not installed (bench/install_perf_analyzer.sh)")
    rows = oip_perf.run(server.url.removeprefix("http://"), PHOTOS, [1, 2], binary=binary, interval_ms=500,
                        stability=100, max_trials=3, timeout_s=120)
    assert [r["concurrency"] for r in rows] == [1, 2]
    assert all("error" not in r and r["images_per_s"] > 0 for r in rows), rows
    metrics = server.get("/metrics").text
    # what it called: Triton's model configuration and the metadata, then the protocol's infer
    for endpoint in ("v2-model", "v2-model-config", "v2-infer"):
        assert f'unet_requests_total{{code="OK",endpoint="{endpoint}"}}' in metrics, endpoint
