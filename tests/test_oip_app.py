"""The Open Inference Protocol's app in-process, behind the guard's validation layer, around a fake runner:
its infer goes through the Segmenter, so a photo's `mask` is the PNG `/mask` answers."""

from __future__ import annotations

import asyncio

import orjson
import pybase64
from conftest import example_photos
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from support.fakes import MODEL_TAG, FakeRunner, deps

from nailseg.api import endpoints
from nailseg.api.guard.error_shape import Refusals
from nailseg.api.guard.validation import Validation
from nailseg.api.routes import OIP_PREFIX, PathSet
from nailseg.api.schemas import MaskRequest
from nailseg.oip.serving import parse_infer

LIMIT = 10_000_000


def _client(d) -> TestClient:
    app = Starlette(routes=[Mount(OIP_PREFIX, app=endpoints.oip_app(d))])
    guarded = Validation(app, refusals=Refusals(lambda: None), max_body_bytes=LIMIT, validated={},
                         infer=PathSet(lambda r: r.infer), parse_infer=parse_infer(LIMIT, 4, 10_000_000))
    return TestClient(guarded)


def test_a_photos_mask_is_the_mask_endpoints_png():
    photo = example_photos()[0][0]
    png = asyncio.run(deps().segmenter.mask_png(photo, MaskRequest()))  # its own collaborators, in its own loop
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"content_type": "base64"},
                        "data": [pybase64.b64encode(photo.read_bytes()).decode()]}],
            "outputs": [{"name": "mask"}, {"name": "nail_count"}]}
    with _client(deps()) as client:
        resp = client.post("/v2/models/unet/infer", content=orjson.dumps(body))
    assert resp.status_code == 200, resp.text
    outputs = {o["name"]: o for o in resp.json()["outputs"]}
    assert pybase64.b64decode(outputs["mask"]["data"][0]) == png
    assert outputs["nail_count"]["shape"] == [1]


def test_pixels_are_resized_to_the_model_and_cut_at_the_default_threshold():
    runner = FakeRunner()
    pixels = [[[255, 255, 255], [0, 0, 0]], [[0, 0, 0], [255, 255, 255]]]  # 2x2, bright on the diagonal
    body = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 2, 2, 3], "data": pixels}]}
    with _client(deps(runner)) as client:
        resp = client.post("/v2/models/unet/infer", content=orjson.dumps(body))
    assert resp.status_code == 200, resp.text
    (mask,) = resp.json()["outputs"]
    assert mask["datatype"] == "UINT8" and mask["shape"] == [1, 2, 2]
    assert mask["data"] == [1, 0, 0, 1]
    assert "infer" in runner.calls


def test_a_bad_photo_fails_the_request_naming_its_index():
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"content_type": "base64"},
                        "data": [pybase64.b64encode(b"not a photo").decode()]}]}
    with _client(deps()) as client:
        resp = client.post("/v2/models/unet/infer", content=orjson.dumps(body))
    assert resp.status_code == 400 and resp.json()["error"].startswith("image 0:")


def test_metadata_names_the_served_version_and_refuses_another():
    with _client(deps()) as client:
        meta = client.get(f"/v2/models/unet/versions/{MODEL_TAG.split(':')[1]}")
        other = client.get("/v2/models/unet/versions/nope")
    assert meta.status_code == 200 and meta.json()["versions"] == ["fake"]
    assert other.status_code == 404 and "nope" in other.json()["error"]
