"""Using the service the way BentoML users do, on a real `bentoml serve`: files in and images out,
mask formats, the OpenAPI spec, metrics, the command-line client and the demo page."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
from pathlib import Path

import bentoml
import cv2
import httpx
import numpy as np
import pytest
from conftest import example_photos
from PIL import Image, ImageOps
from pycocotools import mask as coco_mask
from support.checks import assert_error, b64, png_array
from support.server import MAX_BATCH, MAX_BODY_MB

pytestmark = pytest.mark.e2e

PHOTO = example_photos()[1][0]


def upload(server, path: str, raw: bytes, name: str = "photo.jpg", mime: str = "image/jpeg",
           **fields) -> httpx.Response:
    """What `curl -F image=@photo.jpg -F threshold=0.5 ...` sends."""
    data = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}
    return httpx.post(server.url + "/api/unet" + path, files={"image": (name, raw, mime)}, data=data, timeout=120)


def segment_b64(server, photo: Path, **options) -> dict:
    resp = server.post("/api/unet/segment", {"image_data": b64(photo), **options})
    assert resp.status_code == 200, resp.text[:300]
    return resp.json()


def decode_png(raw: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)


# ---- files in, images out -----------------------------------------------------------------

def test_segment_image_upload_answers_like_segment(server):
    expected = segment_b64(server, PHOTO, threshold=0.4, return_contours=True)
    resp = upload(server, "/segment-image", PHOTO.read_bytes(), threshold=0.4, return_contours=True)
    body = resp.json()
    assert resp.status_code == 200 and body["success"] and body["request_id"] == resp.headers["x-request-id"]
    assert body["mask_data"] == expected["mask_data"]  # the same PNG, byte for byte
    assert body["contours"] == expected["contours"]


def test_mask_returns_png_bytes_equal_to_the_base64_mask(server):
    expected = base64.b64decode(segment_b64(server, PHOTO)["mask_data"])
    resp = upload(server, "/mask", PHOTO.read_bytes())
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    assert resp.content == expected
    over = upload(server, "/mask", PHOTO.read_bytes(), overlay=True)
    assert over.status_code == 200 and over.headers["content-type"] == "image/png"
    picture = decode_png(over.content)
    assert picture.shape == (*decode_png(expected).shape, 3)


def test_sync_and_async_bentoml_clients_upload_paths(server):
    expected = segment_b64(server, PHOTO, threshold=0.6)
    with bentoml.SyncHTTPClient(server.url) as client:
        result = client.segment_image(image=PHOTO, threshold=0.6)
        mask_path = client.mask(image=PHOTO, threshold=0.6)
    result = result if isinstance(result, dict) else result.model_dump()
    assert result["mask_data"] == expected["mask_data"]
    assert Path(mask_path).read_bytes() == base64.b64decode(expected["mask_data"])

    async def use_async():
        async with bentoml.AsyncHTTPClient(server.url) as client:
            return await client.segment_image(image=PHOTO, threshold=0.6), await client.mask(image=PHOTO,
                                                                                             threshold=0.6)

    result, mask_path = asyncio.run(use_async())
    result = result if isinstance(result, dict) else result.model_dump()
    assert result["mask_data"] == expected["mask_data"]
    assert Path(mask_path).read_bytes() == base64.b64decode(expected["mask_data"])


def _png_bytes(fmt: str, size=(64, 64), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format=fmt)
    return buf.getvalue()


BAD_UPLOADS = {  # the same codes as the base64 path gives for the same bytes
    "not an image": (dict(raw=b"hello world"), 400, "NOT_AN_IMAGE"),
    "empty file": (dict(raw=b""), 400, "EMPTY_IMAGE"),
    "truncated jpeg": (dict(raw=PHOTO.read_bytes()[:4000]), 400, "TRUNCATED_IMAGE"),
    "gif": (dict(raw=_png_bytes("GIF"), mime="image/gif"), 415, "UNSUPPORTED_FORMAT"),
    "decompression bomb": (dict(raw=_png_bytes("PNG", (5000, 5000), "1"), mime="image/png"), 413, "IMAGE_TOO_LARGE"),
    "threshold above 1": (dict(raw=b"x", threshold=1.5), 422, "INVALID_REQUEST"),
    "threshold not a number": (dict(raw=b"x", threshold="high"), 422, "INVALID_REQUEST"),
    "unknown option": (dict(raw=b"x", treshold=0.5), 422, "INVALID_REQUEST"),
    "unknown mask format": (dict(raw=b"x", mask_format="bmp"), 422, "INVALID_REQUEST"),
    "body over the size limit": (dict(raw=b"A" * (MAX_BODY_MB * 2**20 + 10)), 413, "BODY_TOO_LARGE"),
}


@pytest.mark.parametrize("name", BAD_UPLOADS)
@pytest.mark.parametrize("path", ["/segment-image", "/mask"])
def test_bad_uploads_get_the_base64_paths_errors(server, path, name):
    kwargs, status, code = BAD_UPLOADS[name]
    if path == "/mask" and "mask_format" in kwargs:
        kwargs = {**kwargs, "overlay": "sometimes"}  # /mask has no mask_format: still a 422
        kwargs.pop("mask_format")
    assert_error(upload(server, path, **kwargs), status, code)


def test_upload_needs_a_file_part_and_multipart(server):
    url = server.url + "/api/unet/segment-image"
    # a text field named image would make BentoML download that URL: refused
    text_part = {"image": (None, "http://127.0.0.1:1/x.jpg")}
    assert_error(httpx.post(url, files=text_part, timeout=30), 422, "INVALID_REQUEST")
    assert_error(httpx.post(url, data={"threshold": "0.5"}, timeout=30), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert_error(httpx.post(url, content=PHOTO.read_bytes(), headers={"content-type": "image/jpeg"}, timeout=30),
                 415, "UNSUPPORTED_MEDIA_TYPE")
    assert_error(httpx.post(url, json={"image": b64(PHOTO)}, timeout=30), 415, "UNSUPPORTED_MEDIA_TYPE")


# ---- mask formats -------------------------------------------------------------------------

def test_coco_rle_decodes_with_pycocotools_to_the_png_mask(server):
    png = png_array(segment_b64(server, PHOTO)["mask_data"])
    body = segment_b64(server, PHOTO, mask_format="coco_rle")
    assert "mask_data" not in body
    rle = body["mask_rle"]
    assert rle["size"] == list(png.shape)
    decoded = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    assert decoded.any() and np.array_equal(decoded, (png > 0).astype(np.uint8))
    upload_rle = upload(server, "/segment-image", PHOTO.read_bytes(), mask_format="coco_rle").json()["mask_rle"]
    assert upload_rle == rle


def test_polygons_outline_the_png_mask(server):
    png = png_array(segment_b64(server, PHOTO)["mask_data"])
    polygons = segment_b64(server, PHOTO, mask_format="polygons")["polygons"]
    assert polygons and all(len(p) >= 6 and len(p) % 2 == 0 for p in polygons)
    drawn = np.zeros_like(png)
    cv2.fillPoly(drawn, [np.array(p).reshape(-1, 2) for p in polygons], 255)
    overlap = (drawn > 0) & (png > 0)
    assert overlap.sum() / max((png > 0).sum(), 1) > 0.95  # filled outlines cover the mask
    h, w = png.shape
    pts = np.concatenate([np.array(p).reshape(-1, 2) for p in polygons])
    assert (pts >= 0).all() and (pts[:, 0] < w).all() and (pts[:, 1] < h).all()


def test_batch_takes_mask_format_too(server):
    body = server.post("/api/unet/segment-batch", {"images": [{"image_data": b64(PHOTO)}],
                                                   "mask_format": "coco_rle"}).json()
    assert body["results"][0]["mask_rle"]["size"]


# ---- the OpenAPI spec ---------------------------------------------------------------------

def test_openapi_spec_lists_every_endpoint_with_bounds_examples_and_errors(server):
    spec = server.get("/docs.json").json()
    paths, schemas = spec["paths"], spec["components"]["schemas"]
    assert len(spec["info"]["description"]) < 1000 and "nail" in spec["info"]["description"]
    for route in ("health", "model-info"):
        get = paths[f"/api/unet/{route}"]["get"]
        assert get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].startswith("#/components")
    for route in ("segment", "segment-image", "mask", "segment-batch", "initialize"):
        post = paths[f"/api/unet/{route}"]["post"]
        ((media, body),) = post["requestBody"]["content"].items()
        assert body["example"], route
        for status in ("401", "422", "429", "503"):
            assert post["responses"][status]["content"]["application/json"]["schema"]["$ref"] == \
                "#/components/schemas/ErrorResponse"
    assert set(schemas["ErrorResponse"]["properties"]) >= {"success", "error", "request_id"}
    seg = paths["/api/unet/segment-image"]["post"]
    assert {"400", "413", "415"} <= set(seg["responses"]) and "UNSUPPORTED_FORMAT" in seg["responses"]["415"]["description"]
    form = seg["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    threshold = form["threshold"].get("anyOf", [form["threshold"]])[0]  # BentoML inlines Optional[float]
    assert threshold["minimum"] == 0 and threshold["maximum"] == 1 and form["threshold"]["description"]
    assert set(form["mask_format"]["enum"]) == {"png", "coco_rle", "polygons"}
    assert "image/png" in paths["/api/unet/mask"]["post"]["responses"]["200"]["content"]
    batch = paths["/api/unet/segment-batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    images = (schemas[batch["$ref"].rsplit("/", 1)[-1]] if "$ref" in batch else batch)["properties"]["images"]
    assert images["maxItems"] == MAX_BATCH and images["minItems"] == 1
    assert '"type": "file"' not in json.dumps(spec)  # OpenAPI 3.0 types only


# ---- metrics ------------------------------------------------------------------------------

def _samples(text: str, name: str) -> dict[str, float]:
    """{'{labels}': value} for one metric family's samples in Prometheus text format."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_metrics_count_requests_images_stages_batches_and_the_model(server):
    before = server.get("/metrics").text
    ok_key = 'unet_requests_total{code="OK",endpoint="segment-image"}'
    bad_key = 'unet_requests_total{code="NOT_AN_IMAGE",endpoint="segment"}'
    assert upload(server, "/segment-image", PHOTO.read_bytes()).status_code == 200
    assert upload(server, "/segment-image", PHOTO.read_bytes()).status_code == 200
    assert server.post("/api/unet/segment", {"image_data": b64(b"not an image")}).status_code == 400
    after = server.get("/metrics").text
    requests = _samples(after, "unet_requests_total")
    assert requests[ok_key] - _samples(before, "unet_requests_total").get(ok_key, 0) == 2
    assert requests[bad_key] - _samples(before, "unet_requests_total").get(bad_key, 0) == 1
    assert _samples(after, "unet_images_total")['unet_images_total{endpoint="segment-image"}'] >= 2
    for stage in ("decode", "runner", "encode"):
        assert _samples(after, "unet_stage_seconds_count")[f'unet_stage_seconds_count{{stage="{stage}"}}'] >= 2
    assert _samples(after, "unet_batch_size_count")["unet_batch_size_count"] >= 2
    assert _samples(after, "unet_batch_size_sum")["unet_batch_size_sum"] >= 2
    assert _samples(after, "unet_inference_seconds_count")["unet_inference_seconds_count"] >= 2
    assert 0 <= _samples(after, "unet_pool_utilization")["unet_pool_utilization"] <= 1
    (info,) = [k for k, v in _samples(after, "unet_model_info").items() if v == 1]
    tag = server.get("/api/unet/model-info").json()["model_tag"]
    assert f'tag="{tag}"' in info and 'device="cpu"' in info and "backend=" in info and "precision=" in info


def test_grafana_dashboard_uses_only_the_services_metrics():
    import re

    from conftest import ROOT

    from nailseg.metrics import __doc__ as metrics_doc

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "unet-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"\bunet_\w+", e)}
    documented = set(re.findall(r"\| (unet_\w+) \|", metrics_doc))
    assert used == documented  # every metric graphed, none that does not exist


# ---- the command-line client ----------------------------------------------------------------

def _cli(server, *args, env_extra=None):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {**os.environ, "NAILSEG_URL": server.url, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "nailseg.client", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_segments_a_folder_writes_masks_and_overlays_and_sums_up_errors(server, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo, _ in example_photos()[:2]:
        (folder / photo.name).write_bytes(photo.read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a photo")
    out = tmp_path / "out"
    run = _cli(server, "segment", str(folder), "--out", str(out), "--overlay", "-j", "2", "--progress")
    assert run.returncode == 1  # one photo failed
    assert "2 of 3 photos segmented" in run.stdout
    assert "broken.jpg: NOT_AN_IMAGE" in run.stderr and "3/3" in run.stderr  # summary and progress bar
    for photo, _ in example_photos()[:2]:
        expected = base64.b64decode(segment_b64(server, photo)["mask_data"])
        assert (out / f"{photo.stem}.mask.png").read_bytes() == expected
        assert decode_png((out / f"{photo.stem}.overlay.png").read_bytes()).ndim == 3
    single = _cli(server, "segment", str(PHOTO), "--out", str(tmp_path / "one"))
    assert single.returncode == 0 and (tmp_path / "one" / f"{PHOTO.stem}.mask.png").exists()


def test_cli_health_and_model_info(server):
    health = _cli(server, "health")
    assert health.returncode == 0 and json.loads(health.stdout)["model_loaded"] is True
    info = _cli(server, "--url", server.url, "--api-key", "k", "model-info")
    assert info.returncode == 0 and json.loads(info.stdout)["model_tag"]
    down = _cli(server, "health", env_extra={"NAILSEG_URL": "http://127.0.0.1:9"})
    assert down.returncode == 1 and "cannot reach" in down.stderr


def test_console_script_points_at_the_client():
    import tomllib

    from conftest import ROOT

    from nailseg.client import cli as client

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["nailseg"].split(":")
    assert module == "nailseg.client.cli" and getattr(client, func) is client.main


# ---- the demo page --------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "demo.png"
# Runs before each page's own scripts (DevTools injects it, so the page's policy does not apply to it):
# every Content-Security-Policy violation on the page, in window.cspViolations.
CSP_LISTENER = """window.cspViolations = [];
document.addEventListener("securitypolicyviolation", e => window.cspViolations.push(
    {directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample, line: e.lineNumber}));"""


@pytest.fixture()
def browser(tmp_path):
    import os

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for driver.get_log
    driver = webdriver.Chrome(options=options, service=DriverService(str(CHROMEDRIVER)))
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_LISTENER})
    yield driver
    driver.quit()


def _csp_directives(policy: str) -> dict[str, list[str]]:
    return {name: sources for name, *sources in (d.split() for d in policy.split(";") if d.strip())}


def test_demo_page_has_a_strict_content_security_policy(server):
    import base64
    import hashlib
    import re

    resp = server.get("/api/unet/demo")
    policy = resp.headers.get("content-security-policy")
    assert policy, "the demo page has no Content-Security-Policy"
    assert "unsafe-" not in policy and "*" not in policy and "http" not in policy  # no unsafe-inline/-eval, no hosts
    d = _csp_directives(policy)
    assert d["default-src"] == d["base-uri"] == d["form-action"] == d["frame-ancestors"] == ["'none'"]
    assert d["connect-src"] == ["'self'"] and set(d["img-src"]) <= {"'self'", "data:", "blob:"}
    for tag in ("script", "style"):  # exactly the page's own inline blocks, by their hash
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", resp.text, flags=re.S)
        hashes = {"'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'" for b in blocks}
        assert blocks and set(d[f"{tag}-src"]) == hashes, tag
    markup = re.sub(r"<(script|style)>.*?</\1>", "", resp.text, flags=re.S)
    assert not re.search(r"<[^>]*\s(style|on[a-z]+)\s*=", markup)  # no inline styles or event handlers
    assert resp.headers["x-frame-options"] == "DENY" and resp.headers["referrer-policy"] == "no-referrer"
    assert resp.headers["x-content-type-options"] == "nosniff"


def _no_policy_violations(browser) -> None:
    """Nothing the page did broke its policy: no violation event, nothing refused in the console."""
    assert browser.execute_script("return window.cspViolations") == []
    console = browser.get_log("browser")
    assert not [e for e in console if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]], console


def _policy_is_in_force(browser) -> None:
    """An inline script that is not the page's own is refused (and reported)."""
    browser.execute_script("const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
                           "document.body.appendChild(s);")
    assert browser.execute_script("return window.injected") is None
    (violation,) = browser.execute_script("return window.cspViolations")
    assert violation["directive"].startswith("script-src")


def _tryon_picture(browser) -> np.ndarray:
    """The try-on picture on the page, as RGB pixels (drawn on a canvas: the policy lets the page fetch
    nothing but the service, not even its own blob: URL)."""
    url = browser.execute_script("const img = document.getElementById('tryon'), c = document.createElement('canvas');"
                                 "c.width = img.naturalWidth; c.height = img.naturalHeight;"
                                 "c.getContext('2d').drawImage(img, 0, 0); return c.toDataURL('image/png');")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"), dtype=np.float32)


def _tryon_renders(browser) -> int:
    img = browser.find_element("id", "tryon")
    return int(img.get_attribute("data-renders") or 0) if img.get_attribute("data-state") == "done" else 0


def test_demo_page_segments_an_uploaded_photo_in_a_real_browser(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = server.get("/api/unet/demo")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text  # no external assets
    browser.get(server.url + "/api/unet/demo")
    browser.find_element(By.ID, "file").send_keys(str(PHOTO))
    WebDriverWait(browser, 180).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state"))
    assert browser.find_element(By.ID, "error").text == ""
    expected = len(segment_b64(server, PHOTO, threshold=0.5, return_contours=True)["contours"])
    assert int(browser.find_element(By.ID, "count").text) == expected > 0
    assert float(browser.find_element(By.ID, "server-ms").text) > 0
    width = browser.execute_script("return document.getElementById('overlay').width")
    assert width == Image.open(PHOTO).width or width == 1024  # at the photo's size (pictures are capped)

    # the slider re-thresholds in the browser: all of the mask goes at 1.0, the count follows
    browser.execute_script("const s = document.getElementById('threshold'); s.value = '1';"
                           "s.dispatchEvent(new Event('input'));")
    assert int(browser.find_element(By.ID, "count").text) == 0
    browser.execute_script("const s = document.getElementById('threshold'); s.value = '0.5';"
                           "s.dispatchEvent(new Event('input'));")
    assert int(browser.find_element(By.ID, "count").text) > 0

    # the try-on: the service's rendering of the photo, again when the polish colour changes
    WebDriverWait(browser, 180).until(lambda d: _tryon_renders(d) >= 1 or d.find_element(By.ID, "error").text)
    assert browser.find_element(By.ID, "error").text == ""
    red = _tryon_picture(browser)
    assert red.shape[:2] == ImageOps.exif_transpose(Image.open(PHOTO)).size[::-1]  # at the photo's own size
    renders = _tryon_renders(browser)
    browser.execute_script("const c = document.getElementById('color'); c.value = '#1e90ff';"
                           "c.dispatchEvent(new Event('input')); c.dispatchEvent(new Event('change'));")
    WebDriverWait(browser, 180).until(lambda d: _tryon_renders(d) > renders or d.find_element(By.ID, "error").text)
    assert browser.find_element(By.ID, "error").text == ""
    blue = _tryon_picture(browser)
    changed = np.abs(blue - red).max(axis=2) > 30
    assert 0.005 < changed.mean() < 0.5  # the nails changed colour, the rest of the photo did not
    assert blue[changed][:, 2].mean() > red[changed][:, 2].mean() + 30  # to blue
    assert red[changed][:, 0].mean() > blue[changed][:, 0].mean() + 30  # from red

    shot = tmp_path / "demo.png"
    browser.save_screenshot(str(shot))
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert pixels.std() > 20  # not a blank page
    magenta = (pixels[..., 0] > 200) & (pixels[..., 1] < 140) & (pixels[..., 2] > 120)
    assert magenta.sum() > 500  # the overlay's tint is on screen
    box = browser.execute_script("const r = document.getElementById('tryon').getBoundingClientRect();"
                                 "return [r.left, r.top, r.right, r.bottom].map(Math.round);")
    shown = pixels[box[1]:box[3], box[0]:box[2]]
    assert shown.size and shown.std() > 20  # the try-on picture is on screen, not blank
    if os.environ.get("UPDATE_DOCS") == "1":  # the README's picture; a test run leaves the tree clean otherwise
        SCREENSHOT.write_bytes(shot.read_bytes())
    _no_policy_violations(browser)
    _policy_is_in_force(browser)


def test_swagger_page_shows_the_services_own_name_version_and_schema_names(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from nailseg.api.openapi import TITLE, project_version

    browser.get(server.url + "/")
    WebDriverWait(browser, 60).until(lambda d: TITLE in d.find_element(By.TAG_NAME, "body").text)
    WebDriverWait(browser, 60).until(lambda d: "SegmentRequest" in d.find_element(By.TAG_NAME, "body").text)
    text = browser.find_element(By.TAG_NAME, "body").text
    assert project_version() in text and "None" not in text.split("\n")[:8]
    assert "nail segmentation" in text and "open inference protocol" in text  # our tags
    assert "BentoML Team" not in text and "BentoML Service API endpoints" not in text
    assert "__Input" not in text and "IODescriptor" not in text
    browser.save_screenshot(str(tmp_path / "swagger.png"))
