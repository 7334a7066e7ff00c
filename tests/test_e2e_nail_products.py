"""What products build on nail masks, on a real `bentoml serve`: the try-on, per-nail geometry, COCO
pre-labels, and the CLI commands for them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import bentoml
import cv2
import httpx
import numpy as np
import pytest
from conftest import example_photos
from support.server import Server
from PIL import Image, ImageOps
from pycocotools.coco import COCO
from support.checks import assert_error, b64, png_array

from nailseg.client import cli
from nailseg.images import tryon

pytestmark = pytest.mark.e2e

TRYON = "/api/unet/tryon"


def post_form(server: Server, path: str, photo: bytes, name="photo.jpg", **fields):
    return httpx.post(server.url + path, files={"image": (name, photo, "image/jpeg")},
                      data={k: str(v) for k, v in fields.items()}, timeout=120)


def decoded(raw: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(raw)) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


def service_mask(server: Server, photo: bytes, **fields) -> np.ndarray:
    resp = post_form(server, "/api/unet/mask", photo, **fields)
    assert resp.status_code == 200, resp.text
    return cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_GRAYSCALE)


@pytest.mark.parametrize("photo", [p for p, _ in example_photos()[:2]], ids=lambda p: p.name)
def test_tryon_paints_the_nails_and_nothing_else(server, photo):
    raw = photo.read_bytes()
    resp = post_form(server, TRYON, raw, color="#C8143C", opacity=1, finish="gloss")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    out, rgb, mask = decoded(resp.content), decoded(raw), service_mask(server, raw)
    assert out.shape == rgb.shape
    reach = tryon.edge_reach(*mask.shape)
    near = cv2.dilate(mask, np.ones((2 * reach + 3,) * 2, np.uint8)) > 0
    assert np.array_equal(out[~near], rgb[~near])  # every pixel away from the nails is the photo's
    inside = mask > 0
    assert inside.sum() > 500
    lab = lambda a: cv2.cvtColor(a.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[inside]  # noqa: E731
    target = tryon.Polish.parse("#C8143C", 1, "gloss").lab
    before, after = lab(rgb), lab(out)
    gap = lambda px: np.linalg.norm(px[:, 1:] - target[1:], axis=1).mean()  # noqa: E731
    assert gap(after) < 0.5 * gap(before)  # moved toward the polish
    assert np.corrcoef(before[:, 0], after[:, 0])[0, 1] > 0.5  # still the photo's shading


def test_tryon_keeps_size_and_exif_orientation_and_answers_jpeg(server):
    photo, _ = example_photos()[0]
    img = Image.open(photo)
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    img.save(buf, format="JPEG", exif=exif.tobytes())
    resp = post_form(server, TRYON, buf.getvalue(), color="#2040FF", output_format="jpeg", finish="matte")
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
    assert decoded(resp.content).shape[:2] == (img.width, img.height)  # upright: sides swapped


def test_a_photo_without_nails_comes_back_unchanged(server):
    dark = np.full((96, 128, 3), 6, np.uint8)  # (the bundled model sees nails in flat grey or white pictures)
    png = cv2.imencode(".png", dark)[1].tobytes()
    assert not service_mask(server, png).any()
    resp = post_form(server, TRYON, png, name="dark.png", color="#C8143C")
    assert resp.status_code == 200
    assert np.array_equal(decoded(resp.content), dark)


@pytest.mark.parametrize("fields", [{"color": "red"}, {"color": "#12345"}, {"color": "#GG0000"}, {},
                                    {"color": "#C8143C", "opacity": 2}, {"color": "#C8143C", "finish": "shiny"},
                                    {"color": "#C8143C", "output_format": "gif"},
                                    {"color": "#C8143C", "threshold": -1}, {"color": "#C8143C", "colour": "x"}],
                         ids=str)
def test_bad_tryon_options_are_a_422(server, fields):
    photo, _ = example_photos()[0]
    assert_error(post_form(server, TRYON, photo.read_bytes(), **fields), 422, "INVALID_REQUEST")


def test_tryon_of_a_bad_photo_is_a_400(server):
    assert_error(post_form(server, TRYON, b"not a photo", color="#C8143C"), 400, "NOT_AN_IMAGE")


def test_tryon_through_the_bentoml_client(server):
    photo, _ = example_photos()[1]
    expected = decoded(post_form(server, TRYON, photo.read_bytes(), color="#C8143C").content)
    with bentoml.SyncHTTPClient(server.url) as client:
        result = client.tryon(image=photo, color="#C8143C")
    assert np.array_equal(decoded(Path(result).read_bytes()), expected)


def test_return_nails_on_every_segment_endpoint(server):
    photo, _ = example_photos()[2]
    raw = photo.read_bytes()
    single = server.post("/api/unet/segment", {"image_data": b64(raw), "return_nails": True,
                                                "return_contours": True}).json()
    upload = post_form(server, "/api/unet/segment-image", raw, return_nails="true").json()
    batch = server.post("/api/unet/segment-batch", {"images": [{"image_data": b64(raw)}],
                                                     "return_nails": True}).json()["results"][0]
    assert single["nails"] == upload["nails"] == batch["nails"]
    mask = png_array(single["mask_data"])
    nails = single["nails"]
    assert len(nails) == len(single["contours"]) >= 3
    assert sum(n["area"] for n in nails) == np.count_nonzero(mask)
    assert [n["area"] for n in nails] == sorted((n["area"] for n in nails), reverse=True)
    for n in nails:
        box, (cx, cy), axis = n["bounding_box"], n["centroid"], n["principal_axis"]
        assert box["x"] <= cx < box["x"] + box["width"] and box["y"] <= cy < box["y"] + box["height"]
        assert 0 < axis["width"] <= axis["length"] and -90 < axis["angle"] <= 90
        assert 0.5 <= n["mean_probability"] <= 1
    assert "nails" not in server.post("/api/unet/segment", {"image_data": b64(raw)}).json()


def test_cli_writes_a_coco_file_that_pycocotools_reads_with_the_service_masks(server, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for p, _ in example_photos():
        (photos / p.name).write_bytes(p.read_bytes())
    (photos / "broken.jpg").write_bytes(b"not a photo")
    out = tmp_path / "labels" / "annotations.json"
    status = cli.main(["--url", server.url, "segment", str(photos), "--coco", str(out), "-j", "2"])
    assert status == 1  # the broken photo failed, and said so
    assert "broken.jpg: NOT_AN_IMAGE" in capsys.readouterr().err
    coco = COCO(str(out))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["nail"]
    assert sorted(im["file_name"] for im in coco.dataset["images"]) == sorted(p.name for p, _ in example_photos())
    for image in coco.dataset["images"]:
        raw = (photos / image["file_name"]).read_bytes()
        mask = service_mask(server, raw) > 0
        assert (image["height"], image["width"]) == mask.shape
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        assert anns and all(0.5 <= a["score"] <= 1 and a["category_id"] == 1 for a in anns)
        union = np.zeros(mask.shape, bool)
        for a in anns:
            one = coco.annToMask(a).astype(bool)
            assert one.sum() == a["area"] and not (union & one).any()  # one nail each, no overlap
            x, y, w, h = a["bbox"]
            assert one[y:y + h, x:x + w].sum() == a["area"]
            union |= one
        assert np.array_equal(union, mask)
    json.loads(out.read_text())  # plain JSON


def test_cli_tryon_writes_a_picture_per_photo(server, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for p, _ in example_photos()[:2]:
        (photos / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "tried"
    assert cli.main(["--url", server.url, "tryon", str(photos), "--color", "#C8143C", "--out", str(out)]) == 0
    written = sorted(out.iterdir())
    assert [p.name for p in written] == [f"{p.stem}.tryon.png" for p, _ in example_photos()[:2]]
    for p, (photo, _) in zip(written, example_photos()[:2]):
        assert decoded(p.read_bytes()).shape == decoded(photo.read_bytes()).shape
    assert cli.main(["--url", server.url, "tryon", str(photos), "--color", "red", "--out", str(out)]) == 1


@pytest.mark.parametrize("path, fields", [(TRYON, {"color": ["#C8143C", "#000000"]}),
                                          ("/api/unet/mask", {"threshold": ["0.4", "0.6"]}),
                                          ("/api/unet/segment-image", {"return_nails": ["true", "true"]})])
def test_an_option_sent_twice_is_a_422(server, path, fields):
    photo, _ = example_photos()[0]
    resp = httpx.post(server.url + path, files={"image": ("p.jpg", photo.read_bytes(), "image/jpeg")}, data=fields,
                      timeout=120)
    body = assert_error(resp, 422, "INVALID_REQUEST")
    assert "more than once" in body["error"]["message"]
