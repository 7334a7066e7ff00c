"""The Open Inference Protocol codec (nailseg/oip/: decoding, encoding, metadata) against the protocol's own clients: request
bodies built by tritonclient's encoder (binary BYTES photos, binary UINT8 tensors) and KServe's SDK (a
JSON UINT8 tensor) are parsed, and the codec's answers are read back by tritonclient's InferResult and
KServe's InferResponse. Then every malformed request: a 400 (or 413) with the protocol's error shape."""

from __future__ import annotations

import base64
import gzip
import zlib

import numpy as np
import orjson
import pytest

from conftest import ROOT
from nailseg.oip import decoding, encoding, metadata
from nailseg.oip import types as oip_types

th = pytest.importorskip("tritonclient.http", reason="dev extra: tritonclient[http]")
kserve = pytest.importorskip("kserve", reason="dev extra: kserve")
from kserve.protocol.infer_type import RequestedOutput as KsRequestedOutput  # noqa: E402
from kserve.protocol.rest.v2_datamodels import ModelMetadataResponse, ServerMetadataResponse  # noqa: E402

PHOTOS = [p.read_bytes() for p in sorted((ROOT / "examples").glob("*.jpg"))[:3]]
MAX = 32


def triton_body(inputs, outputs=None, **kwargs) -> tuple[bytes, int | None]:
    return th.InferenceServerClient.generate_request_body(inputs, outputs=outputs, **kwargs)


def photo_input(photos: list[bytes]):
    inp = th.InferInput("image", [len(photos)], "BYTES")
    inp.set_data_from_numpy(np.array(photos, dtype=np.object_))
    return inp


def pixel_input(pixels: np.ndarray, binary: bool = True):
    inp = th.InferInput("pixels", list(pixels.shape), "UINT8")
    inp.set_data_from_numpy(pixels, binary_data=binary)
    return inp


def triton_result(encoded: encoding.EncodedResponse):
    return th.InferResult.from_response_body(encoded.body, header_length=encoded.header_length)


def fake_pngs(n: int) -> list[bytes]:
    return [b"\x89PNG\r\n\x1a\n" + bytes([i]) * (i + 3) for i in range(n)]


def encode(request: oip_types.InferRequest, **outputs) -> encoding.EncodedResponse:
    return encoding.encode_infer_response(request, model_name="unet", model_version="3", **outputs)


# ------------------------------------------------------------------ round trips with the real clients


def test_tritonclient_binary_photos_round_trip():
    body, json_size = triton_body([photo_input(PHOTOS)], request_id="req-1")
    assert json_size is not None and len(body) > json_size  # the binary extension: JSON header, then tensors
    request = decoding.parse_infer_request(body, str(json_size), max_images=MAX)
    assert request.images == PHOTOS and request.pixels is None
    assert request.input_name == "image" and request.count == len(PHOTOS) and request.id == "req-1"
    # no outputs named: mask alone, binary (tritonclient then sets binary_data_output)
    assert request.outputs == (oip_types.RequestedOutput("mask", True),)
    assert not request.wants("probability")

    masks = fake_pngs(len(PHOTOS))
    encoded = encode(request, mask=masks)
    assert encoded.headers["Inference-Header-Content-Length"] == str(encoded.header_length)
    assert encoded.media_type == "application/octet-stream"
    result = triton_result(encoded)
    got = result.as_numpy("mask")
    assert got.shape == (len(PHOTOS),) and list(got) == masks
    answer = result.get_response()
    assert answer["model_name"] == "unet" and answer["model_version"] == "3" and answer["id"] == "req-1"
    assert result.get_output("mask")["datatype"] == "BYTES"
    # the header is the pydantic model's shape (what the OpenAPI spec can show)
    header = oip_types.InferenceResponse.model_validate(orjson.loads(encoded.body[:encoded.header_length]))
    assert header.outputs[0].parameters == {"binary_data_size": len(encoding.serialize_bytes_elements(masks))}


def test_tritonclient_all_outputs_mixed_binary_and_json():
    outputs = [th.InferRequestedOutput("nail_count"), th.InferRequestedOutput("probability", binary_data=False),
               th.InferRequestedOutput("mask")]
    body, json_size = triton_body([photo_input(PHOTOS[:2])], outputs, parameters={"threshold": 0.25})
    request = decoding.parse_infer_request(body, json_size, max_images=MAX)
    assert request.threshold == 0.25
    assert [(o.name, o.binary) for o in request.outputs] == [("nail_count", True), ("probability", False),
                                                             ("mask", True)]
    prob = np.random.default_rng(0).random((2, 6, 5), dtype=np.float32)
    encoded = encode(request, mask=fake_pngs(2), probability=prob, nail_count=[4, 0])
    result = triton_result(encoded)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["nail_count", "probability", "mask"]
    counts = result.as_numpy("nail_count")
    assert counts.dtype == np.int32 and counts.tolist() == [4, 0]
    got = result.as_numpy("probability")
    assert got.dtype == np.float32 and got.shape == (2, 6, 5) and np.array_equal(got, prob)
    assert "data" in result.get_output("probability")  # asked as JSON
    assert list(result.as_numpy("mask")) == fake_pngs(2)


def test_tritonclient_binary_pixels_round_trip():
    pixels = np.random.default_rng(1).integers(0, 256, (2, 7, 9, 3), dtype=np.uint8)
    body, json_size = triton_body([pixel_input(pixels)], [th.InferRequestedOutput("mask")])
    request = decoding.parse_infer_request(body, json_size, max_images=MAX)
    assert request.images is None and request.input_name == "pixels"
    assert request.pixels.dtype == np.uint8 and request.pixels.shape == (2, 7, 9, 3)
    assert np.array_equal(request.pixels, pixels)

    mask = (pixels[..., 0] > 127).astype(np.uint8)
    result = triton_result(encode(request, mask=mask))
    got = result.as_numpy("mask")
    assert got.dtype == np.uint8 and got.shape == (2, 7, 9) and np.array_equal(got, mask)
    assert result.get_output("mask")["datatype"] == "UINT8"


def test_tritonclient_gzip_request_body():
    body, json_size = triton_body([photo_input(PHOTOS[:1])])
    raw = decoding.decode_content_encoding(gzip.compress(body), "gzip", max_size=len(body))
    request = decoding.parse_infer_request(raw, json_size, max_images=MAX)
    assert request.images == PHOTOS[:1]
    assert decoding.decode_content_encoding(zlib.compress(body), "deflate", max_size=len(body)) == body
    assert decoding.decode_content_encoding(body, None, max_size=len(body)) is body


def test_kserve_json_pixels_round_trip():
    pixels = np.random.default_rng(2).integers(0, 256, (1, 4, 6, 3), dtype=np.uint8)
    inp = kserve.InferInput("pixels", list(pixels.shape), "UINT8")
    inp.set_data_from_numpy(pixels, binary_data=False)
    ks_request = kserve.InferRequest(model_name="unet", infer_inputs=[inp], parameters={"threshold": 0.7},
                                     request_outputs=[KsRequestedOutput("mask"), KsRequestedOutput("nail_count")])
    rest, json_length = ks_request.to_rest()  # what InferenceRESTClient sends (protocol v2)
    assert json_length is None and rest["inputs"][0]["data"][:3] == pixels.reshape(-1)[:3].tolist()
    request = decoding.parse_infer_request(orjson.dumps(rest), None, max_images=MAX)
    assert np.array_equal(request.pixels, pixels) and request.threshold == 0.7
    assert request.id == rest["id"]  # KServe sends a uuid; it comes back
    assert [(o.name, o.binary) for o in request.outputs] == [("mask", False), ("nail_count", False)]

    mask = (pixels[..., 1] % 2).astype(np.uint8)
    encoded = encode(request, mask=mask, nail_count=np.array([2]))
    assert encoded.header_length is None and encoded.media_type == "application/json"
    ks_response = kserve.InferResponse.from_bytes(encoded.body, len(encoded.body))  # what the client does
    by_name = {o.name: o for o in ks_response.outputs}
    assert by_name["mask"].datatype == "UINT8" and list(by_name["mask"].shape) == [1, 4, 6]
    assert np.array_equal(by_name["mask"].as_numpy(), mask)
    assert by_name["nail_count"].as_numpy().tolist() == [2]
    assert ks_response.id == rest["id"]
    # the same JSON answer read by tritonclient (no header length: the whole body is JSON)
    assert np.array_equal(triton_result(encoded).as_numpy("mask"), mask)


def test_tritonclient_json_pixels_and_nested_json_data():
    pixels = np.arange(2 * 3 * 2 * 3, dtype=np.uint8).reshape(2, 3, 2, 3)
    body, json_size = triton_body([pixel_input(pixels, binary=False)])
    assert json_size is None
    assert np.array_equal(decoding.parse_infer_request(body, None, max_images=MAX).pixels, pixels)
    nested = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [2, 3, 2, 3], "data": pixels.tolist()}]}
    assert np.array_equal(decoding.parse_infer_request(orjson.dumps(nested), max_images=MAX).pixels, pixels)


def test_json_photos_need_base64_content_type_and_json_masks_are_base64():
    doc = {"id": "j", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                                  "parameters": {"content_type": "base64"},
                                  "data": [base64.b64encode(p).decode() for p in PHOTOS[:2]]}]}
    request = decoding.parse_infer_request(orjson.dumps(doc), max_images=MAX)
    assert request.images == PHOTOS[:2] and request.outputs == (oip_types.RequestedOutput("mask", False),)
    encoded = encode(request, mask=fake_pngs(2))
    answer = orjson.loads(encoded.body)
    out = answer["outputs"][0]
    assert out["datatype"] == "BYTES" and out["shape"] == [2] and out["parameters"] == {"content_type": "base64"}
    assert [base64.b64decode(s) for s in out["data"]] == fake_pngs(2)

    del doc["inputs"][0]["parameters"]
    with pytest.raises(oip_types.OipError, match="content_type") as err:
        decoding.parse_infer_request(orjson.dumps(doc), max_images=MAX)
    assert err.value.status == 400


def test_binary_data_output_and_per_output_override():
    doc = {"parameters": {"binary_data_output": True},
           "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"content_type": "base64"},
                       "data": [base64.b64encode(PHOTOS[0]).decode()]}],
           "outputs": [{"name": "mask"}, {"name": "nail_count", "parameters": {"binary_data": False}}]}
    request = decoding.parse_infer_request(orjson.dumps(doc), max_images=MAX)
    assert [(o.name, o.binary) for o in request.outputs] == [("mask", True), ("nail_count", False)]
    result = triton_result(encode(request, mask=fake_pngs(1), nail_count=[1]))
    assert result.get_output("nail_count")["data"] == [1]
    assert list(result.as_numpy("mask")) == fake_pngs(1)


def test_encoder_refuses_what_the_server_got_wrong():
    body, json_size = triton_body([photo_input(PHOTOS[:2])], [th.InferRequestedOutput("probability")])
    request = decoding.parse_infer_request(body, json_size, max_images=MAX)
    with pytest.raises(ValueError, match="probability"):
        encode(request, mask=fake_pngs(2))
    with pytest.raises(ValueError):
        encode(request, mask=fake_pngs(2), probability=np.zeros((3, 4, 4), np.float32))


# ------------------------------------------------------------------ metadata, configuration, health


def test_server_and_model_metadata_parse_as_kserve_models():
    server = ServerMetadataResponse.model_validate(metadata.server_metadata("nailseg", "0.1.0"))
    assert "binary_tensor_data" in server.extensions
    meta = metadata.model_metadata("unet", ["3"], "nailseg_unet", model_size=(256, 192), max_batch_images=MAX)
    parsed = ModelMetadataResponse.model_validate(meta)
    assert parsed.name == "unet" and parsed.versions == ["3"]
    tensors = {t.name: (t.datatype, t.shape) for t in parsed.inputs + parsed.outputs}
    assert tensors == {"image": ("BYTES", [-1]), "pixels": ("UINT8", [-1, -1, -1, 3]), "mask": ("BYTES", [-1]),
                       "probability": ("FP32", [-1, 256, 192]), "nail_count": ("INT32", [-1])}
    assert meta["parameters"] == {"max_batch_images": MAX}


def test_model_config_has_what_perf_analyzer_reads():
    config = metadata.model_config("unet", "nailseg_unet", max_batch_images=MAX, model_size=(256, 256))
    # 0: N is an explicit dimension (with > 0 perf_analyzer strips it and image [N] has no shape left)
    assert config["max_batch_size"] == 0
    assert {i["name"]: (i["data_type"], i["dims"], i["optional"]) for i in config["input"]} == {
        "image": ("TYPE_STRING", [-1], True), "pixels": ("TYPE_UINT8", [-1, -1, -1, 3], True)}
    assert [o["name"] for o in config["output"]] == ["mask", "probability", "nail_count"]
    for absent in ("sequence_batching", "dynamic_batching", "model_transaction_policy", "response_cache"):
        assert absent not in config
    assert config["platform"] != "ensemble"
    assert metadata.live_body() == {"live": True} and metadata.ready_body(False) == {"ready": False}
    assert metadata.model_ready_body("unet", True) == {"name": "unet", "ready": True}


# ------------------------------------------------------------------ malformed requests


def _json(doc) -> bytes:
    return orjson.dumps(doc)


def _image(shape=(1,), datatype="BYTES", **extra):
    return {"name": "image", "datatype": datatype, "shape": list(shape),
            "parameters": {"content_type": "base64"}, "data": [base64.b64encode(b"x").decode()] * shape[0], **extra}


def _pixels(shape=(1, 2, 2, 3), datatype="UINT8", data=None):
    n = int(np.prod(shape))
    return {"name": "pixels", "datatype": datatype, "shape": list(shape), "data": [0] * n if data is None else data}


def _binary_pixels(shape=(1, 2, 2, 3), size=None, payload=None):
    payload = bytes(int(np.prod(shape))) if payload is None else payload
    head = _json({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": list(shape),
                              "parameters": {"binary_data_size": len(payload) if size is None else size}}]})
    return head + payload, len(head)


def _binary_image(elements: bytes, shape=(1,), size=None):
    head = _json({"inputs": [{"name": "image", "datatype": "BYTES", "shape": list(shape),
                              "parameters": {"binary_data_size": len(elements) if size is None else size}}]})
    return head + elements, len(head)


def _binary_pixels_with_data():
    payload = bytes(12)
    head = _json({"inputs": [{**_pixels(), "parameters": {"binary_data_size": 12}}]})
    return head + payload, len(head)


def _len(n: int) -> bytes:
    return n.to_bytes(4, "little")


BAD = {
    "not JSON": (b"{nope", None, "not valid JSON"),
    "binary after JSON without the header": (_binary_pixels()[0], None, "Inference-Header-Content-Length"),
    "a JSON array": (b"[1, 2]", None, "JSON object"),
    "no inputs key": (_json({"outputs": []}), None, "inputs"),
    "empty inputs": (_json({"inputs": []}), None, "inputs is empty"),
    "shape of strings": (_json({"inputs": [{**_pixels(), "shape": ["1", 2, 2, 3]}]}), None, "shape"),
    "unknown input": (_json({"inputs": [{**_pixels(), "name": "INPUT0"}]}), None, "unknown input 'INPUT0'"),
    "two inputs": (_json({"inputs": [_pixels(), _image()]}), None, "one input"),
    "image as UINT8": (_json({"inputs": [_image(datatype="UINT8")]}), None, "datatype BYTES, not UINT8"),
    "pixels as FP32": (_json({"inputs": [_pixels(datatype="FP32")]}), None, "datatype UINT8, not FP32"),
    "image of shape [1, 1]": (_json({"inputs": [{**_image(), "shape": [1, 1]}]}), None, "shape [N]"),
    "pixels without RGB": (_json({"inputs": [_pixels(shape=(1, 2, 2, 4))]}), None, "[N, H, W, 3]"),
    "pixels of rank 3": (_json({"inputs": [_pixels(shape=(2, 2, 3))]}), None, "[N, H, W, 3]"),
    "zero images": (_json({"inputs": [_pixels(shape=(0, 2, 2, 3), data=[])]}), None, "at least 1"),
    "too many images": (_json({"inputs": [_image(shape=(MAX + 1,))]}), None, f"at most {MAX}"),
    "JSON count mismatch": (_json({"inputs": [{**_image(shape=(2,)), "data": ["eA=="]}]}), None, "holds 1"),
    "bad base64": (_json({"inputs": [{**_image(), "data": ["not base64!"]}]}), None, "base64"),
    "pixel data too short": (_json({"inputs": [_pixels(data=[0] * 11)]}), None, "needs 12 values"),
    "pixel value 256": (_json({"inputs": [_pixels(data=[256] + [0] * 11)]}), None, "0 to 255"),
    "pixel value -1": (_json({"inputs": [_pixels(data=[-1] + [0] * 11)]}), None, "0 to 255"),
    "float pixels": (_json({"inputs": [_pixels(data=[0.5] * 12)]}), None, "integers"),
    "bool pixels": (_json({"inputs": [_pixels(data=[True] * 12)]}), None, "integers"),
    "ragged pixels": (_json({"inputs": [_pixels(data=[[0, 0], [0]])]}), None, "regular array"),
    "no data": (_json({"inputs": [{k: v for k, v in _pixels().items() if k != "data"}]}), None, "no data"),
    "unknown output": (_json({"inputs": [_pixels()], "outputs": [{"name": "OUTPUT0"}]}), None,
                       "unknown output 'OUTPUT0'"),
    "output twice": (_json({"inputs": [_pixels()], "outputs": [{"name": "mask"}, {"name": "mask"}]}), None, "twice"),
    "empty outputs": (_json({"inputs": [_pixels()], "outputs": []}), None, "outputs is empty"),
    "binary_data as a string": (_json({"inputs": [_pixels()], "outputs": [{"name": "mask", "parameters":
                                                                          {"binary_data": "yes"}}]}), None,
                                "true or false"),
    "classification": (_json({"inputs": [_pixels()], "outputs": [{"name": "mask", "parameters":
                                                                 {"classification": 3}}]}), None, "classification"),
    "shared memory": (_json({"inputs": [{**_pixels(), "parameters": {"shared_memory_region": "r"}}]}), None,
                      "shared memory"),
    "threshold 1.5": (_json({"inputs": [_pixels()], "parameters": {"threshold": 1.5}}), None, "threshold"),
    "threshold true": (_json({"inputs": [_pixels()], "parameters": {"threshold": True}}), None, "threshold"),
    "threshold as text": (_json({"inputs": [_pixels()], "parameters": {"threshold": "0.5"}}), None, "threshold"),
    "a parameter that is a list": (_json({"inputs": [_pixels()], "parameters": {"x": [1]}}), None, "parameters"),
    "binary_data_output 1": (_json({"inputs": [_pixels()], "parameters": {"binary_data_output": 1}}), None,
                             "true or false"),
    "header length not a number": (_json({"inputs": [_pixels()]}), "12a", "whole number"),
    "header length past the body": (_json({"inputs": [_pixels()]}), "100000", "body has"),
    "stray bytes after a JSON input": (_json({"inputs": [_pixels()]}) + b"xx", len(_json({"inputs": [_pixels()]})),
                                       "no input is binary"),
    "binary input without the header": (_binary_pixels()[0][:_binary_pixels()[1]], None, "is missing"),
    "binary_data_size bigger than sent": (*_binary_pixels(size=13), "binary_data_size is 13"),
    "binary_data_size smaller than sent": (*_binary_pixels(size=11), "binary_data_size is 11"),
    "binary pixels of the wrong size": (*_binary_pixels(payload=bytes(11)), "binary_data_size is 11"),
    "binary_data_size negative": (*_binary_pixels(size=-1), "whole number"),
    "binary and data both": (*_binary_pixels_with_data(), "both"),
    "BYTES element longer than its tensor": (*_binary_image(_len(99) + b"abc"), "declares 99 bytes"),
    "BYTES with a broken length": (*_binary_image(_len(1) + b"a" + b"\x01\x00"), "stray bytes"),
    "BYTES with fewer elements than its shape": (*_binary_image(_len(1) + b"a", shape=(2,)), "holds 1 elements"),
    "BYTES with more elements than its shape": (*_binary_image((_len(1) + b"a") * 3), "more than 1"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_requests_are_400_with_the_protocols_error_shape(case):
    body, header, message = BAD[case]
    with pytest.raises(oip_types.OipError) as err:
        decoding.parse_infer_request(body, header, max_images=MAX)
    assert err.value.status == 400, err.value.message
    assert message in err.value.message
    assert orjson.loads(err.value.body()) == {"error": err.value.message}
    oip_types.ErrorResponse.model_validate_json(err.value.body())


def test_pixel_limit_is_413():
    body, header = _binary_pixels(shape=(1, 20, 30, 3))
    assert decoding.parse_infer_request(body, header, max_images=MAX, max_pixels=600).pixels.shape == (1, 20, 30, 3)
    with pytest.raises(oip_types.OipError, match="pixel limit") as err:
        decoding.parse_infer_request(body, header, max_images=MAX, max_pixels=599)
    assert err.value.status == 413


def test_content_encoding_errors():
    bomb = zlib.compress(bytes(10_000_000))
    with pytest.raises(oip_types.OipError) as err:
        decoding.decode_content_encoding(bomb, "deflate", max_size=1_000_000)
    assert err.value.status == 413
    with pytest.raises(oip_types.OipError) as err:
        decoding.decode_content_encoding(b"not gzip", "gzip", max_size=100)
    assert err.value.status == 400
    with pytest.raises(oip_types.OipError) as err:
        decoding.decode_content_encoding(gzip.compress(b"x" * 100)[:-9], "gzip", max_size=1000)
    assert err.value.status == 400
    with pytest.raises(oip_types.OipError) as err:
        decoding.decode_content_encoding(b"x", "br", max_size=100)
    assert err.value.status == 415


def test_the_codec_does_not_import_torch():
    import subprocess
    import sys
    code = "import sys, nailseg.oip.decoding, nailseg.oip.encoding, nailseg.oip.metadata; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
