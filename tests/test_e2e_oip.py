"""The Open Inference Protocol through the serving world's own clients (tritonclient, KServe's SDK), against
a real `bentoml serve .`: the guide's endpoints unchanged beside it, masks equal to `/mask`'s."""

from __future__ import annotations

import asyncio
import base64
import io

import httpx
import numpy as np
import pytest
from conftest import example_photos
from PIL import Image
from support.keys import bearer, fresh_key
from support.server import MAX_BATCH

th = pytest.importorskip("tritonclient.http")
kserve = pytest.importorskip("kserve")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.e2e


def _triton(srv) -> "th.InferenceServerClient":
    return th.InferenceServerClient(srv.url.removeprefix("http://"))


def _photos() -> list[bytes]:
    return [p.read_bytes() for p, _ in example_photos()]


def _mask(srv, photo: bytes, threshold: float | None = None) -> bytes:
    data = {} if threshold is None else {"threshold": str(threshold)}
    return httpx.post(srv.url + "/api/unet/mask", files={"image": ("p.jpg", photo, "image/jpeg")}, data=data,
                      timeout=120).content


def _image_input(photos: list[bytes]):
    inp = th.InferInput("image", [len(photos)], "BYTES")
    inp.set_data_from_numpy(np.array(photos, dtype=object))  # binary by default
    return inp


def test_live_ready_and_metadata_through_tritonclient(server):
    client = _triton(server)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("unet")
    meta = client.get_server_metadata()
    assert meta["name"] == "nail-segmentation" and "binary_tensor_data" in meta["extensions"]
    model = client.get_model_metadata("unet")
    version = server.get("/api/unet/model-info").json()["model_tag"].split(":")[1]
    assert model["versions"] == [version]
    assert {t["name"]: t["datatype"] for t in model["inputs"]} == {"image": "BYTES", "pixels": "UINT8"}
    assert {t["name"] for t in model["outputs"]} == {"mask", "probability", "nail_count"}
    assert client.is_model_ready("unet", model_version=version)
    assert client.get_model_config("unet")["max_batch_size"] == 0  # what perf_analyzer reads


def test_binary_photos_give_the_masks_mask_gives(server):
    photos = _photos()[:MAX_BATCH]
    result = _triton(server).infer("unet", [_image_input(photos)], outputs=[
        th.InferRequestedOutput("mask"), th.InferRequestedOutput("nail_count"), th.InferRequestedOutput("probability")])
    masks = result.as_numpy("mask")
    assert len(masks) == len(photos)
    for photo, mask in zip(photos, masks):
        assert mask == _mask(server, photo)  # byte for byte
    counts = result.as_numpy("nail_count")
    assert counts.dtype == np.int32 and (counts > 0).all()
    prob = result.as_numpy("probability")
    assert prob.dtype == np.float32 and prob.shape[0] == len(photos) and 0 <= prob.min() <= prob.max() <= 1


def test_threshold_parameter_is_the_masks_threshold(server):
    photo = _photos()[0]
    result = _triton(server).infer("unet", [_image_input([photo])], parameters={"threshold": 0.8})
    assert result.as_numpy("mask")[0] == _mask(server, photo, 0.8) != _mask(server, photo)


def test_binary_uint8_pixels_give_0_1_masks_at_their_size(server):
    photo = _photos()[0]
    rgb = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    pixels = np.stack([rgb, rgb[::-1]])
    inp = th.InferInput("pixels", list(pixels.shape), "UINT8")
    inp.set_data_from_numpy(pixels)
    mask = _triton(server).infer("unet", [inp]).as_numpy("mask")
    assert mask.shape == pixels.shape[:3] and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    expected = np.asarray(Image.open(io.BytesIO(_mask(server, photo)))) // 255  # same pixels as the JPEG decodes
    assert (mask[0] == expected).mean() > 0.999


def test_bad_image_and_unknown_model_are_the_protocols_errors_through_tritonclient(server):
    client = _triton(server)
    with pytest.raises(InferenceServerException) as bad:
        client.infer("unet", [_image_input([b"not a photo"])])
    assert bad.value.status() == "400" and "image 0" in bad.value.message()
    with pytest.raises(InferenceServerException) as unknown:
        client.infer("nails", [_image_input(_photos()[:1])])
    assert unknown.value.status() == "404"
    with pytest.raises(InferenceServerException) as version:
        client.infer("unet", [_image_input(_photos()[:1])], model_version="no-such-version")
    assert version.value.status() == "404"
    with pytest.raises(InferenceServerException) as many:
        client.infer("unet", [_image_input(_photos()[:1] * (MAX_BATCH + 1))])
    assert many.value.status() == "400"


def test_wrong_datatype_or_shape_is_a_400_in_the_protocols_shape(server):
    for inputs in ([{"name": "pixels", "datatype": "FP32", "shape": [1, 2, 2, 3], "data": [0.0] * 12}],
                   [{"name": "pixels", "datatype": "UINT8", "shape": [1, 2, 2], "data": [0] * 4}],
                   [{"name": "pixels", "datatype": "UINT8", "shape": [1, 2, 2, 3], "data": [0] * 5}]):
        resp = server.post("/v2/models/unet/infer", {"inputs": inputs})
        assert resp.status_code == 400 and resp.headers["content-type"] == "application/json"
        assert set(resp.json()) == {"error"} and resp.headers["x-request-id"]
    big = httpx.post(server.url + "/v2/models/unet/infer", content=b"{" + b" " * (3 * 2**20) + b"}", timeout=60)
    assert big.status_code == 413 and set(big.json()) == {"error"}


def test_kserve_rest_client_infers_a_json_uint8_tensor(server):
    rgb = np.asarray(Image.open(io.BytesIO(_photos()[0])).convert("RGB").resize((96, 64)))[None]

    async def run():
        client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2"))
        try:
            live = await client.is_server_live(server.url)
            ready = await client.is_model_ready(server.url, "unet")
            request = kserve.InferRequest(model_name="unet", infer_inputs=[
                kserve.InferInput("pixels", list(rgb.shape), "UINT8", data=rgb.reshape(-1).tolist())])
            answer = await client.infer(server.url, request, model_name="unet")
            with pytest.raises(Exception) as bad:
                await client.infer(server.url, kserve.InferRequest(model_name="unet", infer_inputs=[
                    kserve.InferInput("pixels", [1, 2, 2], "UINT8", data=[0] * 4)]), model_name="unet")
            photo = kserve.InferInput("image", [1], "BYTES", data=[base64.b64encode(b"not a photo").decode()],
                                      parameters={"content_type": "base64"})
            with pytest.raises(Exception) as bad_image:
                await client.infer(server.url, kserve.InferRequest(model_name="unet", infer_inputs=[photo]),
                                   model_name="unet")
            with pytest.raises(Exception) as unknown:
                await client.infer(server.url, kserve.InferRequest(model_name="nails", infer_inputs=[photo]),
                                   model_name="nails")
            return live, ready, answer, bad.value, bad_image.value, unknown.value
        finally:
            await client.close()

    live, ready, answer, bad, bad_image, unknown = asyncio.run(run())
    assert live and ready
    mask = answer.outputs[0]
    assert mask.name == "mask" and mask.datatype == "UINT8" and mask.shape == [1, 64, 96]
    assert set(mask.as_numpy().ravel()) <= {0, 1} and mask.as_numpy().sum() > 0
    assert "400" in str(bad) or "shape" in str(bad)
    assert "image 0" in str(bad_image) and "not a JPEG, PNG or BMP" in str(bad_image)  # the protocol's message
    assert "404" in str(unknown) or "no such endpoint" in str(unknown)


def test_the_guides_endpoints_are_unchanged_beside_it(server):
    assert server.get("/api/unet/health").status_code == 200
    metrics = server.get("/metrics").text
    assert 'unet_requests_total{code="OK",endpoint="v2-infer"}' in metrics


def test_keys_and_open_health_on_the_protocol(keyed):  # noqa: F811
    client = _triton(keyed)
    assert client.is_server_live() and client.is_server_ready()  # open, like /livez and /readyz
    with pytest.raises(InferenceServerException) as refused:
        client.get_model_metadata("unet")
    assert refused.value.status() == "401"
    key = fresh_key()
    assert client.get_model_metadata("unet", headers=bearer(key))["name"] == "unet"
    resp = httpx.post(keyed.url + "/v2/models/unet/infer", json={"inputs": []}, timeout=30)
    assert resp.status_code == 401 and set(resp.json()) == {"error"} and resp.headers["x-request-id"]


def test_mutated_photos_and_random_bodies_through_infer_get_200_or_a_clean_4xx(server):
    import random

    from support.mutated_images import mutated_corpus
    from support.mutated_images import expected

    from nailseg.errors import ErrorCode

    corpus = mutated_corpus(120)

    def send(i: int) -> tuple[int, httpx.Response]:
        body, json_size = th.InferenceServerClient.generate_request_body([_image_input([corpus[i][1]])])
        headers = {"Inference-Header-Content-Length": str(json_size), "X-Request-ID": f"oip-{i}"}
        return i, httpx.post(server.url + "/v2/models/unet/infer", content=body, headers=headers, timeout=120)

    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for i, resp in pool.map(send, range(len(corpus))):
            name, raw = corpus[i]
            assert resp.status_code < 500 and resp.headers["x-request-id"] == f"oip-{i}", name
            want = expected(raw)
            if resp.status_code == 200:
                header = int(resp.headers["inference-header-content-length"])
                png = resp.content[header + 4:]  # one BYTES element: its 4-byte length, then the PNG
                assert np.asarray(Image.open(io.BytesIO(png))).shape == want, name
            else:
                assert set(resp.json()) == {"error"} and resp.status_code == ErrorCode(want).status, name
    rng = random.Random(0)
    for i in range(200):  # the envelope itself: random bytes, random header lengths, random JSON
        body = rng.randbytes(rng.randint(0, 300))
        if i % 3 == 0:
            body = b'{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": ' \
                   b'{"binary_data_size": %d}}]}' % rng.randint(-5, 400) + body
        headers = {"Inference-Header-Content-Length": str(rng.randint(-3, len(body) + 3))} if i % 2 else {}
        resp = httpx.post(server.url + "/v2/models/unet/infer", content=body, headers=headers, timeout=60)
        assert 400 <= resp.status_code < 500 and set(resp.json()) == {"error"}, (i, resp.status_code, resp.text[:200])
    assert "Traceback" not in server.log.read_text()
