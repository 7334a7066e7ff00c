"""bench/oip_perf.py: perf_analyzer's input data and CSV, and (where perf_analyzer is installed, see
bench/install_perf_analyzer.sh) a short run against a stand-in server that answers with the codec's
metadata, model configuration and responses: what perf_analyzer needs from the real routes."""

from __future__ import annotations

import base64
import socket
import threading
import time

import numpy as np
import pytest

from bench import oip_perf
from conftest import ROOT
from nailseg.api import oip

PHOTOS = [p.read_bytes() for p in sorted((ROOT / "examples").glob("*.jpg"))[:2]]


def test_input_data_holds_length_prefixed_photos():
    data = oip_perf.input_data(PHOTOS)
    assert len(data["data"]) == len(PHOTOS)
    for step, photo in zip(data["data"], PHOTOS):
        assert step["image"]["shape"] == [1]
        raw = base64.b64decode(step["image"]["content"]["b64"])
        assert raw[:4] == len(photo).to_bytes(4, "little") and raw[4:] == photo
        # what perf_analyzer then sends is a valid binary BYTES tensor for the codec
        head = oip.orjson.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                             "parameters": {"binary_data_size": len(raw)}}]})
        assert oip.parse_infer_request(head + raw, len(head), max_images=1).images == [photo]


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


def _stand_in_server():
    """A stand-in for the service's protocol routes: the codec's bodies, 8x8 zero masks."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
    import uvicorn

    seen: list[str] = []

    async def metadata(request):
        seen.append(request.url.path)
        return JSONResponse(oip.model_metadata("unet", ["1"], "nailseg_unet", model_size=(8, 8)))

    async def config(request):
        seen.append(request.url.path)
        return JSONResponse(oip.model_config("unet", "nailseg_unet", max_batch_images=4, model_size=(8, 8)))

    async def server(request):
        seen.append(request.url.path)
        return JSONResponse(oip.server_metadata("nailseg", "test"))

    async def infer(request):
        body = await request.body()
        try:
            req = oip.parse_infer_request(body, request.headers.get(oip.HEADER_LENGTH), max_images=4)
        except oip.OipError as exc:
            return Response(exc.body(), exc.status, media_type="application/json")
        seen.append(f"infer {req.input_name} {[(o.name, o.binary) for o in req.outputs]}")
        n = req.count
        enc = oip.encode_infer_response(req, model_name="unet", model_version="1", mask=[b"png"] * n,
                                        probability=np.zeros((n, 8, 8), np.float32), nail_count=[0] * n)
        return Response(enc.body, 200, headers=enc.headers)

    async def other(request):
        seen.append(request.url.path)
        return JSONResponse({"error": "not found"}, 404)

    app = Starlette(routes=[Route("/v2", server), Route("/v2/models/unet", metadata),
                            Route("/v2/models/unet/config", config),
                            Route("/v2/models/unet/infer", infer, methods=["POST"]),
                            Route("/{p:path}", other, methods=["GET", "POST"])])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return srv, thread, port, seen


def test_perf_analyzer_runs_against_the_codecs_routes():
    binary = oip_perf.find_perf_analyzer()
    if binary is None:
        pytest.skip("perf_analyzer not installed (bench/install_perf_analyzer.sh)")
    srv, thread, port, seen = _stand_in_server()
    try:
        rows = oip_perf.run(f"127.0.0.1:{port}", PHOTOS, [1, 2], binary=binary, interval_ms=300, stability=100,
                            max_trials=3, timeout_s=60)
    finally:
        srv.should_exit = True
        thread.join(10)
    assert [r["concurrency"] for r in rows] == [1, 2]
    assert all("error" not in r and r["images_per_s"] > 0 for r in rows), rows
    # its calls besides the protocol's infer: metadata, Triton's model configuration, server metadata
    assert {"/v2/models/unet", "/v2/models/unet/config", "/v2"} <= set(seen)
    infers = {s for s in seen if s.startswith("infer")}
    # only the input its data holds (both are optional), every output of the metadata, binary
    assert infers == {"infer image [('mask', True), ('nail_count', True), ('probability', True)]"}
