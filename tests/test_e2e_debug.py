"""The serving guide's debug keys on a real `bentoml serve .`, switched on by UNET_* variables: the debug
outputs (bounded, as served), the perf log line, and the debug endpoints (admin keys only, never open).
Off, on the default server: tests/test_e2e_service.py."""

from __future__ import annotations

import base64
import contextlib
import io
import re
import secrets
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import example_photos
from PIL import Image
from support.checks import assert_error, b64, png_array
from support.server import start_server

from nailseg.api.debug_outputs import saved
from nailseg.images.postprocess import visualization_size

pytestmark = pytest.mark.e2e

KEY, ADMIN_KEY = secrets.token_hex(16), secrets.token_hex(16)
MAX_OUTPUTS = 3
WAIT_S = 60  # for the writer thread and the log: a bound on waiting, not a timing assertion
DEBUG_PATHS = ("/api/unet/debug/config", "/api/unet/debug/requests", "/api/unet/debug/outputs")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("debug_outputs")


@pytest.fixture(scope="module")
def debug_server(tmp_path_factory, out_dir):
    yield from start_server(
        tmp_path_factory, UNET_DEVELOPMENT_ENABLE_DEBUG_ENDPOINTS="true", UNET_DEVELOPMENT_SAVE_DEBUG_OUTPUTS="true",
        UNET_DEVELOPMENT_DEBUG_OUTPUT_DIR=str(out_dir), UNET_DEVELOPMENT_MAX_DEBUG_OUTPUTS=str(MAX_OUTPUTS),
        UNET_LOGGING_ENABLE_PERFORMANCE_LOGGING="true", UNET_SECURITY_API_KEYS=KEY,
        UNET_SECURITY_ADMIN_KEYS=ADMIN_KEY)


def _rid(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:12]}"


def _png(raw: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(raw)).save(out, format="PNG")
    return out.getvalue()


def _mask(server, raw: bytes, request_id: str) -> bytes:
    kind = "png" if raw.startswith(b"\x89PNG") else "jpeg"
    resp = httpx.post(server.url + "/api/unet/mask", files={"image": (f"photo.{kind}", raw, f"image/{kind}")},
                      headers={"X-Request-ID": request_id, **bearer(KEY)}, timeout=120)
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png", resp.text[:300]
    return resp.content


def _wait_for_folders(out_dir: Path, newest: list[str]) -> list[Path]:
    """The request folders, once the writer has written ``newest`` (request ids) as the newest ones."""
    deadline = time.monotonic() + WAIT_S
    while True:
        folders = saved(out_dir)
        ids = [f.name.partition("-")[2] for f in folders]
        if ids[-len(newest):] == newest or time.monotonic() > deadline:
            return folders
        time.sleep(0.2)


def _folder_of(out_dir: Path, request_id: str) -> Path:
    """The newest request folder, once it is ``request_id``'s."""
    folders = _wait_for_folders(out_dir, [request_id])
    assert folders and folders[-1].name.endswith("-" + request_id), [f.name for f in folders]
    return folders[-1]


def _array(raw: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(raw)))


def test_saved_outputs_are_the_newest_requests_as_sent_and_served(debug_server, out_dir):
    photos = [p.read_bytes() for p, _ in example_photos()]
    sent = [*photos, _png(photos[0])]  # 5 requests: 4 JPEGs, then one PNG
    rids = [_rid(f"mask{i}") for i in range(len(sent))]
    masks = {rid: _mask(debug_server, raw, rid) for rid, raw in zip(rids, sent)}
    folders = _wait_for_folders(out_dir, rids[-MAX_OUTPUTS:])
    assert [f.name.partition("-")[2] for f in folders] == rids[-MAX_OUTPUTS:]  # exactly the newest 3
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z-" + re.escape(rids[-1]), folders[-1].name)
    for folder, rid, raw in zip(folders, rids[-MAX_OUTPUTS:], sent[-MAX_OUTPUTS:]):
        ext = ".png" if raw.startswith(b"\x89PNG") else ".jpg"
        assert sorted(p.name for p in folder.iterdir()) == sorted([f"input{ext}", "mask.png", "overlay.png"])
        assert (folder / f"input{ext}").read_bytes() == raw
        assert (folder / "mask.png").read_bytes() == masks[rid]  # byte for byte what /mask answered
        w, h = Image.open(io.BytesIO(raw)).size
        overlay = Image.open(folder / "overlay.png")
        assert overlay.size == visualization_size(h, w)[::-1] and overlay.mode == "RGB"
        assert Image.open(folder / "mask.png").size == (w, h)


def test_segment_batch_and_infer_save_their_photos_too(debug_server, out_dir):
    photo = example_photos()[1][0].read_bytes()
    mask = _array(_mask(debug_server, photo, _rid("ref")))
    rid = _rid("segment")
    resp = debug_server.post("/api/unet/segment", {"image_data": b64(photo)},
                             headers={"X-Request-ID": rid, **bearer(KEY)})
    assert resp.status_code == 200
    np.testing.assert_array_equal(png_array(resp.json()["mask_data"]), mask)
    folder = _folder_of(out_dir, rid)
    assert (folder / "input.jpg").read_bytes() == photo
    np.testing.assert_array_equal(_array((folder / "mask.png").read_bytes()), mask)

    batch_rid = _rid("batch")
    resp = debug_server.post("/api/unet/segment-batch", {"images": [{"image_data": b64(photo)}, {"image_data": "!!"},
                                                                    {"image_data": b64(photo)}]},
                             headers={"X-Request-ID": batch_rid, **bearer(KEY)})
    assert resp.status_code == 200 and [r["success"] for r in resp.json()["results"]] == [True, False, True]
    folder = _folder_of(out_dir, batch_rid)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.*")) == [
        "0/input.jpg", "0/mask.png", "0/overlay.png", "2/input.jpg", "2/mask.png", "2/overlay.png"]  # 1 failed
    np.testing.assert_array_equal(_array((folder / "2" / "mask.png").read_bytes()), mask)

    infer_rid = _rid("infer")
    resp = httpx.post(debug_server.url + "/v2/models/unet/infer", timeout=120,
                      headers={"X-Request-ID": infer_rid, **bearer(KEY)},
                      json={"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64(photo)],
                                        "parameters": {"content_type": "base64"}}]})
    assert resp.status_code == 200, resp.text[:300]
    (out,) = [o for o in resp.json()["outputs"] if o["name"] == "mask"]
    folder = _folder_of(out_dir, infer_rid)
    assert (folder / "0" / "input.jpg").read_bytes() == photo
    assert (folder / "0" / "mask.png").read_bytes() == base64.b64decode(out["data"][0])


def test_performance_logging_writes_a_perf_line_with_the_request_id(debug_server):
    rid = _rid("perf")
    _mask(debug_server, example_photos()[0][0].read_bytes(), rid)
    line = re.compile(rf"perf {re.escape(rid)} mask decode=\d+\.\dms runner=\d+\.\dms encode=\d+\.\dms "
                      rf"total=\d+\.\dms status=200")
    deadline = time.monotonic() + WAIT_S
    while not line.search(debug_server.log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert line.search(debug_server.log.read_text()), debug_server.log.read_text()[-3000:]


def test_debug_endpoints_answer_admin_keys_only(debug_server):
    for path in DEBUG_PATHS:
        assert_error(debug_server.get(path), 401, "UNAUTHORIZED")
        assert_error(debug_server.get(path, headers=bearer(KEY)), 403, "FORBIDDEN")
        resp = debug_server.get(path, headers=bearer(ADMIN_KEY))
        assert resp.status_code == 200 and resp.json()["request_id"] == resp.headers["x-request-id"], path


def test_debug_config_is_the_effective_settings_without_any_key(debug_server, out_dir):
    resp = debug_server.get("/api/unet/debug/config", headers=bearer(ADMIN_KEY))
    settings = resp.json()["settings"]
    assert settings["development"] == {"enable_debug_endpoints": True, "save_debug_outputs": True,
                                       "debug_output_dir": str(out_dir), "max_debug_outputs": MAX_OUTPUTS}
    assert settings["logging"]["enable_performance_logging"] is True
    assert settings["limits"]["max_body_mb"] == 2  # test_e2e_service's UNET_LIMITS_MAX_BODY_MB
    assert settings["security"]["api_keys"] == ["**********"] and settings["security"]["admin_keys"] == ["**********"]
    assert KEY not in resp.text and ADMIN_KEY not in resp.text


def test_debug_requests_show_recent_requests_with_their_stage_times(debug_server):
    rid = _rid("ring")
    _mask(debug_server, example_photos()[2][0].read_bytes(), rid)
    recent = debug_server.get("/api/unet/debug/requests", headers=bearer(ADMIN_KEY)).json()["requests"]
    assert recent[0]["request_id"] == rid  # newest first
    entry = recent[0]
    assert entry["endpoint"] == "mask" and entry["status"] == 200 and entry["images"] == 1
    assert set(entry["stages_ms"]) == {"decode", "runner", "encode"} and entry["total_ms"] > 0


def test_debug_outputs_list_the_saved_folders_newest_first(debug_server, out_dir):
    rid = _rid("listed")
    _mask(debug_server, example_photos()[3][0].read_bytes(), rid)
    _folder_of(out_dir, rid)
    body = debug_server.get("/api/unet/debug/outputs", headers=bearer(ADMIN_KEY)).json()
    assert body["saving"] is True and body["directory"] == str(out_dir) and body["max_outputs"] == MAX_OUTPUTS
    assert [o["name"] for o in body["outputs"]] == [f.name for f in reversed(saved(out_dir))]
    assert body["outputs"][0]["request_id"] == rid
    assert body["outputs"][0]["files"] == ["input.jpg", "mask.png", "overlay.png"]


def test_debug_endpoints_are_in_the_spec_when_served(debug_server):
    paths = debug_server.get("/docs.json", headers=bearer(KEY)).json()["paths"]
    assert all("get" in paths[p] for p in DEBUG_PATHS)


def test_without_an_admin_key_configured_debug_endpoints_are_refused_to_everyone(tmp_path_factory):
    """An open service (no keys at all) with the debug endpoints on: they are still not open."""
    open_server = contextlib.contextmanager(start_server)
    with open_server(tmp_path_factory, UNET_DEVELOPMENT_ENABLE_DEBUG_ENDPOINTS="true") as server:
        for path in DEBUG_PATHS:
            body = assert_error(server.get(path), 403, "FORBIDDEN")
            assert "security.admin_keys" in body["error"]["message"]
        assert server.post("/api/unet/segment", {"image_data": b64(example_photos()[0][0])}).status_code == 200
