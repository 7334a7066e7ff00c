"""The API's own CPU per image, in-process (CPU time, so it holds on a busy machine too):

- JSON path (/segment): body JSON parse and validation, base64 decode, image decode, resize to the
  model, probability resize, threshold, mask PNG encode, base64, response JSON;
- binary path (multipart in, PNG out): image decode, resize, probability resize, threshold, PNG encode;
- the JSON path as it was before 2026-11-29 (mask PNGs from libpng), measured in the same passes;
- what products cost beside /mask, per photo at 1 MP and 12 MP: /tryon (PNG and JPEG answers) and
  /segment-image with return_nails (``product_costs``).

The model is left out (its probabilities are computed once beforehand), and so are HTTP and the runner
hop, which the benchmark's per-process CPU accounting covers.

    python -m bench.api_cost [--photos 16]   # add --products for the try-on and geometry costs
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from contextlib import nullcontext
from unittest import mock

import cv2
import numpy as np

from nailseg.api import jsonbody
from nailseg.api.schemas import ModelInfoBrief, SegmentOptions, SegmentRequest, SegmentResponse
from nailseg.images import codec as imaging
from nailseg.images import pipeline
from nailseg.images.codec import encode_png
from nailseg.images.tryon import Polish
from nailseg.model.spec import Preprocessing

MAX_PIXELS = 10**8
BRIEF = ModelInfoBrief(model_variant="custom", device="cpu")


def json_request(body: bytes, prep: Preprocessing) -> tuple[SegmentRequest, pipeline.PreparedImage]:
    """The JSON path up to the model: parse and validate the body, decode and resize the image."""
    request = SegmentRequest.model_validate_json(body)
    return request, pipeline.prepare(request.image_data, prep, MAX_PIXELS)


def json_answer(request: SegmentRequest, prepared: pipeline.PreparedImage, prob: np.ndarray) -> bytes:
    """The JSON path after the model: mask, PNG, base64, response JSON."""
    fields = pipeline.segment_fields(prepared, prob, request.threshold, request)
    return jsonbody.dump(SegmentResponse(**fields, request_id="0" * 32, model_info=BRIEF, processing_time_ms=1.0))


def json_path(body: bytes, prep: Preprocessing, prob: np.ndarray) -> bytes:
    return json_answer(*json_request(body, prep), prob)


def binary_path(raw: bytes, prep: Preprocessing, prob: np.ndarray) -> bytes:
    prepared = pipeline.prepare_bytes(raw, prep, MAX_PIXELS)
    return encode_png(pipeline.mask_for(prepared, prob, 0.5)[1])


POLISH = Polish((200, 20, 60), 0.85, "gloss")
NAILS = SegmentOptions(return_nails=True)
PRODUCT_SIZES = {"1MP": (1152, 864), "12MP": (4000, 3000)}  # (w, h)


def product_paths() -> dict:
    """Each path a product endpoint takes in the API after the model, from the uploaded photo's bytes."""
    def tryon_png(raw, prep, prob):
        return pipeline.tryon_picture(pipeline.prepare_bytes(raw, prep, MAX_PIXELS), prob, 0.5, POLISH, "png")

    def tryon_jpeg(raw, prep, prob):
        return pipeline.tryon_picture(pipeline.prepare_bytes(raw, prep, MAX_PIXELS), prob, 0.5, POLISH, "jpeg")

    def nails(raw, prep, prob):
        return pipeline.segment_fields(pipeline.prepare_bytes(raw, prep, MAX_PIXELS), prob, 0.5, NAILS)

    return {"mask_us": binary_path, "tryon_png_us": tryon_png, "tryon_jpeg_us": tryon_jpeg,
            "segment_image_nails_us": nails}


def product_costs(photos: dict[str, list[bytes]], prep: Preprocessing, probs: dict[str, list[np.ndarray]],
                  rounds: int = 3) -> dict[str, dict[str, float]]:
    """Per size: microseconds of CPU per photo on /mask and on each product path, passes interleaved."""
    out = {}
    for size, raws in photos.items():
        spent = dict.fromkeys(product_paths(), 0.0)
        for rnd in range(rounds + 1):
            for name, path in product_paths().items():
                started = time.process_time()
                for raw, prob in zip(raws, probs[size]):
                    path(raw, prep, prob)
                if rnd:
                    spent[name] += time.process_time() - started
        out[size] = {name: 1e6 * t / (rounds * len(raws)) for name, t in spent.items()}
    return out


def product_photos(photos: list[bytes]) -> dict[str, list[bytes]]:
    """The photos again at each of PRODUCT_SIZES (JPEG, quality 90)."""
    def at(raw: bytes, wh: tuple[int, int]) -> bytes:
        img = cv2.resize(cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR), wh,
                         interpolation=cv2.INTER_CUBIC)
        return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()

    return {size: [at(p, wh) for p in photos] for size, wh in PRODUCT_SIZES.items()}


def _libpng_masks(mask: np.ndarray) -> bytes:
    """How mask PNGs were encoded until 2026-11-29 (libpng through OpenCV, default settings)."""
    return cv2.imencode(".png", mask)[1].tobytes()


def api_costs(photos: list[bytes], prep: Preprocessing, probs: list[np.ndarray], rounds: int = 10) -> dict[str, float]:
    """Microseconds of CPU per image on each path (mean over the photos, ``rounds`` passes), and the JSON
    path as it was before (libpng masks), its passes interleaved with the others' so drift hits all alike."""
    bodies = [json.dumps({"image_data": base64.b64encode(p).decode(), "threshold": 0.5}).encode() for p in photos]
    paths = {"json_path_us": (json_path, bodies), "binary_path_us": (binary_path, photos),
             "json_path_libpng_before_us": (json_path, bodies)}
    spent = dict.fromkeys(paths, 0.0)
    for rnd in range(rounds + 1):  # round 0 warms up: first calls pay one-off costs
        for name, (path, inputs) in paths.items():
            with mock.patch.object(imaging, "_greyscale_png", _libpng_masks) if "libpng" in name else nullcontext():
                started = time.process_time()
                for item, prob in zip(inputs, probs):
                    path(item, prep, prob)
                if rnd:
                    spent[name] += time.process_time() - started
    return {name: 1e6 * t / (rounds * len(photos)) for name, t in spent.items()}


def model_probabilities(engine, photos: list[bytes]) -> list[np.ndarray]:
    return [engine.infer(pipeline.prepare_bytes(p, engine.prep, MAX_PIXELS).model_input[None])[0] for p in photos]


def main(argv: list[str] | None = None) -> None:
    from bench.photos import ROOT, load_photos
    from nailseg.config import load_settings
    from training.evaluate import engine_for

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=ROOT / "models/unet/checkpoints/best_model.pth")
    p.add_argument("--photos", type=int, default=16)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--products", action="store_true", help="the try-on and geometry costs beside /mask, at "
                   "1 MP and 12 MP, instead")
    args = p.parse_args(argv)
    photos = load_photos(args.photos)
    engine = engine_for(args.checkpoint, load_settings())
    if args.products:
        sized = product_photos(photos)
        probs = {size: model_probabilities(engine, raws) for size, raws in sized.items()}
        for size, costs in product_costs(sized, engine.prep, probs, max(1, args.rounds // 3)).items():
            print(f"{size}: " + ", ".join(f"{k} {v / 1000:,.1f} ms" for k, v in costs.items()))
        return
    costs = api_costs(photos, engine.prep, model_probabilities(engine, photos), args.rounds)
    print(", ".join(f"{k} {v:,.0f}" for k, v in costs.items()))


if __name__ == "__main__":
    main()
