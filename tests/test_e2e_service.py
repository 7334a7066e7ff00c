"""End to end: a real `bentoml serve .` on a free port with its own model store, real photos."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import socket
from pathlib import Path

import bentoml
import cv2
import httpx
import numpy as np
import pytest
from conftest import BUNDLED_MIN_DICE, dice, example_photos, require_bundled
from support.checks import assert_error, b64, png_array
from support.server import MAX_BATCH, MAX_BODY_MB, inflight_images, run_import, wait_for
from PIL import Image

from nailseg.inference.hardware import cpu_bf16_flags
from nailseg.model.checkpoint import file_sha256
from nailseg.store.quantize import nncf_available

pytestmark = pytest.mark.e2e

# ---- the happy paths ----------------------------------------------------------------------

def test_health_reports_real_state(server):
    resp = server.get("/api/unet/health")
    body = resp.json()
    assert resp.status_code == 200 and body["service_healthy"] and body["model_loaded"]
    assert body["memory_pools_ready"] and body["gpu_available"] is False and body["device"] == "cpu"
    assert body["last_health_check"] and body["request_id"] == resp.headers["x-request-id"]
    assert 0 <= body["memory_usage"]["input_pool_utilization"] <= 1
    assert "segmentation" in body["capabilities"] and "batch_processing" in body["capabilities"]
    assert body["model_info"]["model_name"] == "unet"


def test_model_info_describes_the_imported_checkpoint(server):
    body = server.get("/api/unet/model-info").json()
    bundled = require_bundled()
    assert body["checkpoint_sha256"] == file_sha256(bundled)
    assert body["checkpoint_path"] == bundled.name  # not the server's path (security.expose_server_paths)
    assert body["architecture_details"]["model_type"] == "AttentionUNet"
    h, w = body["preprocessing_config"]["image_size"]
    assert body["input_shape"] == [1, 3, h, w] and body["output_shape"] == [1, 1, h, w]
    assert body["preprocessing_config"]["normalize"] is False  # trained with /255 only
    assert body["supported_formats"] == ["JPEG", "PNG", "BMP"]
    assert body["model_parameters"] > 100_000
    assert body["test_time_flip"] is False  # config.yaml's default: one forward pass per photo


@pytest.mark.skipif(not nncf_available(), reason="nncf not installed")
def test_model_info_says_which_precision_is_served_and_why(server):
    """The real import gates the bundled model's int8 IR (it passes); ``auto`` then decides on this CPU: int8's
    agreement with fp32 on the gate photos and every candidate's speed, in ``precision_reason`` and the metric."""
    body = server.get("/api/unet/model-info").json()
    gate = body["int8_gate"]
    assert gate["passed"] and gate["mask_iou"] >= gate["min_mask_iou"] == 0.97
    assert gate["mean_abs_prob_diff"] <= gate["max_mean_abs_prob_diff"] == 0.01
    reason = body["precision_reason"]
    assert body["precision"] in ("int8", "bf16", "fp32") and reason.startswith(f"auto: {body['precision']}")
    assert "on this CPU it agrees with fp32 (IoU" in reason and "on 16 gate inputs" in reason
    assert "int8 " in reason and "fp32 " in reason and "img/s at batch 1/8" in reason
    assert ("bf16 " in reason) == bool(cpu_bf16_flags())
    if body["precision"] != "int8":
        assert "not int8: " in reason
    served = [line.rsplit(" ", 1)[0] for line in server.get("/metrics").text.splitlines()
              if line.startswith("unet_model_info{") and float(line.rsplit(" ", 1)[1]) == 1]
    assert len(served) == 1 and f'precision="{body["precision"]}"' in served[0]


@pytest.mark.skipif(not nncf_available(), reason="nncf not installed")
def test_import_also_writes_the_int8_model_that_precision_int8_serves(server):
    home = Path(server.env["BENTOML_HOME"])
    assert list(home.glob("models/unet/*/openvino/model.xml"))
    assert list(home.glob("models/unet/*/openvino/model_int8.xml"))


@pytest.mark.parametrize("photo, truth", example_photos(), ids=lambda p: p.name)
def test_segment_answers_real_photos_at_their_own_size(server, photo, truth):
    resp = server.post("/api/unet/segment", {"image_data": b64(photo), "threshold": 0.5, "return_confidence": True,
                                             "return_contours": True, "return_visualizations": True})
    body = resp.json()
    assert resp.status_code == 200 and body["success"] is True
    assert body["request_id"] == resp.headers["x-request-id"] and body["processing_time_ms"] > 0
    assert body["model_info"]["device"] == "cpu"
    mask = png_array(body["mask_data"])
    assert mask.shape == Image.open(photo).size[::-1]
    assert set(np.unique(mask)) <= {0, 255}
    h, w = mask.shape
    c = body["confidence_scores"]
    assert 0 <= c["background_mean"] <= c["overall_mean"] <= c["mask_mean"] <= 1
    assert len(body["contours"]) == len(cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0])
    for contour in body["contours"]:
        pts = np.array(contour["points"])
        assert (pts[:, 0] < w).all() and (pts[:, 1] < h).all() and (pts >= 0).all()
        box = contour["bounding_box"]
        assert box["x"] + box["width"] <= w and box["y"] + box["height"] <= h
        assert mask[pts[:, 1], pts[:, 0]].min() == 255  # contour points lie on the mask
    for name in ("overlay", "heatmap"):
        assert png_array(body["visualizations"][name]).shape[:2] == (h, w)


def test_bundled_model_finds_the_labelled_nails(server):
    """Regression floor for the bundled model (see MODEL_CARD.md for its measured quality)."""
    masks, truths = [], []
    for photo, truth in example_photos():
        masks.append(png_array(server.post("/api/unet/segment", {"image_data": b64(photo)}).json()["mask_data"]))
        truths.append(cv2.imread(str(truth), cv2.IMREAD_GRAYSCALE))
    assert dice(np.stack(masks), np.stack(truths)) >= BUNDLED_MIN_DICE


def test_threshold_is_per_request(server):
    photo = example_photos()[0][0]
    areas = [(png_array(server.post("/api/unet/segment", {"image_data": b64(photo), "threshold": t})
                        .json()["mask_data"]) > 0).sum() for t in (0.05, 0.5, 0.95)]
    assert areas[0] >= areas[1] >= areas[2] and areas[0] > areas[2]


def test_optional_fields_are_absent_unless_asked_for(server):
    body = server.post("/api/unet/segment", {"image_data": b64(example_photos()[0][0])}).json()
    assert not {"confidence_scores", "contours", "visualizations"} & set(body)


def test_png_bmp_greyscale_and_rotated_inputs(server):
    photo = Image.open(example_photos()[0][0])
    for img, fmt, kw in [(photo, "PNG", {}), (photo, "BMP", {}), (photo.convert("L"), "PNG", {}),
                         (photo.convert("RGBA"), "PNG", {})]:
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        resp = server.post("/api/unet/segment", {"image_data": b64(buf.getvalue())})
        assert resp.status_code == 200 and png_array(resp.json()["mask_data"]).shape == photo.size[::-1]
    wide = photo.resize((300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    wide.save(buf, format="JPEG", exif=exif)
    mask = png_array(server.post("/api/unet/segment", {"image_data": b64(buf.getvalue())}).json()["mask_data"])
    assert mask.shape == (300, 200)  # displayed (rotated) size


def test_batch_segments_each_image_and_one_bad_image_fails_only_its_entry(server):
    photos = example_photos()
    images = [{"image_data": b64(photos[0][0])}, {"image_data": "bm90IGFuIGltYWdl"}, {"image_data": b64(photos[1][0])}]
    resp = server.post("/api/unet/segment-batch", {"images": images, "return_contours": True})
    body = resp.json()
    assert resp.status_code == 200 and body["success"] and body["batch_size"] == 3
    assert body["request_id"] == resp.headers["x-request-id"] and body["total_processing_time_ms"] > 0
    ok0, bad, ok2 = body["results"]
    assert ok0["success"] and ok2["success"] and ok0["contours"]
    assert bad["success"] is False and bad["error"]["code"] == "NOT_AN_IMAGE" and bad["index"] == 1
    for result, (photo, _) in ((ok0, photos[0]), (ok2, photos[1])):
        single = server.post("/api/unet/segment", {"image_data": b64(photo)}).json()
        assert np.array_equal(png_array(result["mask_data"]), png_array(single["mask_data"]))


def test_batch_gives_the_same_masks_as_single_requests(server):
    photos = [p for p, _ in example_photos()]
    batch = server.post("/api/unet/segment-batch", {"images": [{"image_data": b64(p)} for p in photos]}).json()
    for photo, result in zip(photos, batch["results"]):
        single = server.post("/api/unet/segment", {"image_data": b64(photo)}).json()
        assert np.array_equal(png_array(single["mask_data"]), png_array(result["mask_data"]))


def test_service_mask_equals_evaluation_mask(server):
    """Serving and evaluation share one code path: the same photo gives the same mask."""
    from nailseg.config import load_settings
    from training.evaluate import engine_for, predict_mask

    engine = engine_for(require_bundled(), load_settings(environ={}))
    for photo, _ in example_photos():
        served = png_array(server.post("/api/unet/segment", {"image_data": b64(photo)}).json()["mask_data"])
        assert np.array_equal(served, predict_mask(engine, photo.read_bytes(), 0.5, 10**7))


def test_evaluation_through_the_server_scores_what_clients_get(server):
    """`python -m training.evaluate --url`: the served masks score exactly as the in-process ones."""
    from conftest import DATA

    from nailseg.config import load_settings
    from training.evaluate import engine_for, evaluate, evaluate_served

    if not (DATA / "splits" / "test.txt").exists():
        pytest.skip(f"the shared data set is not at {DATA}")
    engine = engine_for(require_bundled(), load_settings(environ={}))
    served = evaluate_served(server.url, DATA, "test", None, limit=12)
    assert served.images == 12 and served.pooled_dice > 0.8
    assert served == evaluate(engine, DATA, "test", 0.5, 10**7, limit=12)


def test_bentoml_sdk_client(server):
    photo, _ = example_photos()[2]
    expected = png_array(server.post("/api/unet/segment", {"image_data": b64(photo)}).json()["mask_data"])
    with bentoml.SyncHTTPClient(server.url) as client:
        result = client.segment(image_data=b64(photo), threshold=0.5, return_contours=True)
        batch = client.segment_batch(images=[{"image_data": b64(photo)}])
        init = client.initialize(force_reload=False, warm_up=False)
    result = result if isinstance(result, dict) else result.model_dump()
    assert result["success"] and np.array_equal(png_array(result["mask_data"]), expected)
    batch = batch if isinstance(batch, dict) else batch.model_dump()
    assert batch["batch_size"] == 1 and batch["results"][0]["success"]
    init = init if isinstance(init, dict) else init.model_dump()
    assert init["success"] and init["service_ready"]


# ---- bad input: 4xx, our error shape, never a 500 -----------------------------------------

def _image_bytes(fmt: str, size=(64, 64), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format=fmt)
    return buf.getvalue()


BAD_REQUESTS = {
    "invalid base64": ("/segment", {"image_data": "%%%not-base64%%%"}, 400, "INVALID_BASE64"),
    "not an image": ("/segment", {"image_data": base64.b64encode(b"hello world").decode()}, 400, "NOT_AN_IMAGE"),
    "truncated jpeg": ("/segment", {"image_data": b64(example_photos()[0][0].read_bytes()[:4000])}, 400,
                       "TRUNCATED_IMAGE"),
    "gif": ("/segment", {"image_data": b64(_image_bytes("GIF"))}, 415, "UNSUPPORTED_FORMAT"),
    "decompression bomb": ("/segment", {"image_data": b64(_image_bytes("PNG", (5000, 5000), "1"))}, 413,
                           "IMAGE_TOO_LARGE"),
    "threshold above 1": ("/segment", {"image_data": "aGk=", "threshold": 1.5}, 422, "INVALID_REQUEST"),
    "threshold below 0": ("/segment", {"image_data": "aGk=", "threshold": -0.1}, 422, "INVALID_REQUEST"),
    "threshold not a number": ("/segment", {"image_data": "aGk=", "threshold": "high"}, 422, "INVALID_REQUEST"),
    "missing image_data": ("/segment", {"threshold": 0.5}, 422, "INVALID_REQUEST"),
    "misspelt field": ("/segment", {"image_data": "aGk=", "treshold": 0.5}, 422, "INVALID_REQUEST"),
    "flag not a bool": ("/segment", {"image_data": "aGk=", "return_contours": "yes"}, 422, "INVALID_REQUEST"),
    "body is a list": ("/segment", [{"image_data": "aGk="}], 400, "INVALID_JSON"),
    "body is not json": ("/segment", b"image_data=abc", 400, "INVALID_JSON"),
    "empty body": ("/segment", b"", 400, "INVALID_JSON"),
    "empty batch": ("/segment-batch", {"images": []}, 422, "EMPTY_BATCH"),
    "batch over the limit": ("/segment-batch", {"images": [{"image_data": "aGk="}] * (MAX_BATCH + 1)}, 413,
                             "BATCH_TOO_LARGE"),
    "batch entry misspelt": ("/segment-batch", {"images": [{"image": "aGk="}]}, 422, "INVALID_REQUEST"),
    "batch images not a list": ("/segment-batch", {"images": "aGk="}, 422, "INVALID_REQUEST"),
    "initialize unknown field": ("/initialize", {"force": True}, 422, "INVALID_REQUEST"),
    "body over the size limit": ("/segment", {"image_data": "A" * (MAX_BODY_MB * 2**20 + 10)}, 413, "BODY_TOO_LARGE"),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_bad_input_gets_a_clear_4xx_with_a_code_and_request_id(server, name):
    path, body, status, code = BAD_REQUESTS[name]
    assert_error(server.post("/api/unet" + path, body), status, code)


def test_unknown_route_and_wrong_method_use_the_same_error_shape(server):
    assert_error(server.get("/api/unet/nothing-here"), 404, "NOT_FOUND")
    assert_error(server.get("/api/unet/segment"), 405, "METHOD_NOT_ALLOWED")


def test_debug_keys_are_off_by_default(server):
    """development.enable_debug_endpoints off: its paths are unknown ones, not in the spec; no perf lines
    (logging.enable_performance_logging off). On: tests/test_e2e_debug.py."""
    assert server.post("/api/unet/segment", {"image_data": b64(example_photos()[0][0])}).status_code == 200
    for path in ("/api/unet/debug/config", "/api/unet/debug/requests", "/api/unet/debug/outputs"):
        assert_error(server.get(path), 404, "NOT_FOUND")
    assert not any(p.startswith("/api/unet/debug") for p in server.get("/docs.json").json()["paths"])
    assert " perf " not in server.log.read_text()


def test_oversized_body_is_refused_before_it_is_read(server):
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /api/unet/segment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 500000000\r\n\r\n{\"image_data\": \"")  # and nothing more
        reply = b""
        while b"BODY_TOO_LARGE" not in reply and (chunk := sock.recv(65536)):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413") and b"BODY_TOO_LARGE" in reply


def test_client_request_id_is_kept(server):
    resp = httpx.post(server.url + "/api/unet/segment", json={"image_data": "!!"}, headers={"X-Request-ID": "abc-123"})
    assert resp.headers["x-request-id"] == "abc-123" and resp.json()["request_id"] == "abc-123"


def test_service_keeps_serving_after_bad_input(server):
    for name in BAD_REQUESTS:
        path, body, _, _ = BAD_REQUESTS[name]
        assert server.post("/api/unet" + path, body).status_code < 500
    assert server.get("/api/unet/health").json()["service_healthy"]
    assert server.post("/api/unet/segment", {"image_data": b64(example_photos()[0][0])}).status_code == 200
    assert "Traceback" not in server.log.read_text()


# ---- /initialize and model reloads (last: they change the served model) --------------------

def test_reload_does_not_fail_requests_in_flight(server):
    photo = b64(example_photos()[0][0])

    def segment(_):
        return server.post("/api/unet/segment", {"image_data": photo}).status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(segment, i) for i in range(12)]
        wait_for(lambda: inflight_images(server) > 0 or all(f.done() for f in futures), 60, every_s=0.02,
                 what="requests in flight")
        init = server.post("/api/unet/initialize", {"force_reload": True, "warm_up": True})
        statuses = [f.result() for f in futures]
    assert init.status_code == 200 and init.json()["success"] and init.json()["initialization_time_ms"] > 0
    assert statuses == [200] * 12


def test_initialize_serves_a_newly_imported_model(server, trained_run):
    checkpoint = trained_run / "best_model.pth"  # a few real training steps: trains, imports, serves
    before = server.get("/api/unet/model-info").json()["model_tag"]
    out = run_import(server.env, checkpoint)
    assert "imported unet:" in out and "already" not in out
    assert "already imported" in run_import(server.env, checkpoint)  # same file: no second version
    body = server.post("/api/unet/initialize", {"force_reload": True}).json()
    assert body["success"] and body["model_tag"] != before
    info = server.get("/api/unet/model-info").json()
    assert info["model_tag"] == body["model_tag"] and info["input_shape"] == [1, 3, 64, 64]
    data = trained_run.parent / "data"  # the synthetic set it was trained on: its masks are known
    masks, truths = [], []
    for stem in (data / "splits" / "test.txt").read_text().split():
        photo, truth = data / "images" / f"{stem}.jpg", data / "masks" / f"{stem}.png"
        masks.append(png_array(server.post("/api/unet/segment", {"image_data": b64(photo)}).json()["mask_data"]))
        truths.append(cv2.imread(str(truth), cv2.IMREAD_GRAYSCALE))
    assert all(m.shape == (64, 64) for m in masks)
    assert dice(np.stack(masks), np.stack(truths)) >= 0.5  # pooled over the synthetic test images


def test_a_broken_model_in_the_store_does_not_stop_serving(server):
    home = Path(server.env["BENTOML_HOME"]) / "models" / "unet"
    latest = home / (home / "latest").read_text().strip()
    (latest / "weights.safetensors").write_bytes(b"corrupt")
    body = assert_error(server.post("/api/unet/initialize", {"force_reload": True}), 503, "MODEL_NOT_READY")
    assert "previous model is still served" in body["error"]["message"]
    photo = example_photos()[0][0]
    assert server.post("/api/unet/segment", {"image_data": b64(photo)}).status_code == 200
