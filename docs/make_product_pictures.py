"""The pictures of docs/products.md from the bundled model and examples/nails_02.jpg:

- docs/tryon.png: the photo, then the try-on in three polishes (gloss, gloss, matte);
- docs/geometry.png: return_nails drawn: each nail's outline, box, centroid and principal axis.

    .venv/bin/python docs/make_product_pictures.py
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from nailseg.config import load_settings
from nailseg.images import codec, geometry, pipeline, tryon
from training.evaluate import engine_for

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "examples" / "nails_02.jpg"
POLISHES = [("#C8143C", "gloss"), ("#2B59C3", "gloss"), ("#E8A0B4", "matte")]
HEIGHT = 360  # each panel's height in the picture


def panel(rgb: np.ndarray, label: str) -> np.ndarray:
    scale = HEIGHT / rgb.shape[0]
    out = cv2.resize(rgb, (round(rgb.shape[1] * scale), HEIGHT), interpolation=cv2.INTER_AREA)
    cv2.rectangle(out, (0, 0), (out.shape[1], 26), (255, 255, 255), cv2.FILLED)
    cv2.putText(out, label, (8, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (30, 30, 30), 1, cv2.LINE_AA)
    return out


def draw_geometry(rgb: np.ndarray, nails, scale: float) -> np.ndarray:
    """The nails drawn on the photo scaled by ``scale`` (thin lines at the picture's own size)."""
    out = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    for n in nails:
        b = n.bounding_box
        cv2.rectangle(out, (round(b.x * scale), round(b.y * scale)),
                      (round((b.x + b.width) * scale), round((b.y + b.height) * scale)), (255, 210, 0), 1)
        cv2.polylines(out, [np.round(np.array(n.outline) * scale).astype(np.int32)], True, (255, 0, 160), 2)
        cx, cy = n.centroid[0] * scale, n.centroid[1] * scale
        n = n.model_copy(update={"principal_axis": n.principal_axis.model_copy(update={
            "length": n.principal_axis.length * scale, "width": n.principal_axis.width * scale})})
        t = math.radians(n.principal_axis.angle)
        for half, colour in ((n.principal_axis.length / 2, (0, 230, 255)), (n.principal_axis.width / 2, (0, 255, 0))):
            dx, dy = (math.cos(t), math.sin(t)) if colour == (0, 230, 255) else (-math.sin(t), math.cos(t))
            cv2.line(out, (round(cx - half * dx), round(cy - half * dy)), (round(cx + half * dx), round(cy + half * dy)),
                     colour, 2, cv2.LINE_AA)
        cv2.circle(out, (round(cx), round(cy)), 4, (255, 255, 255), cv2.FILLED)
    return out


def main() -> None:
    settings = load_settings()
    engine = engine_for(ROOT / "models/unet/checkpoints/best_model.pth", settings)
    raw = PHOTO.read_bytes()
    prepared = pipeline.prepare_bytes(raw, engine.prep, 10**8)
    prob = engine.infer(prepared.model_input[None])[0]
    rgb = codec.decode_image(raw, 10**8)
    panels = [panel(rgb, "photo")]
    for colour, finish in POLISHES:
        png = pipeline.tryon_picture(prepared, prob, 0.5, tryon.Polish.parse(colour, 0.85, finish))
        panels.append(panel(codec.decode_image(png, 10**8), f"{colour} {finish}"))
    cv2.imwrite(str(ROOT / "docs" / "tryon.png"), cv2.cvtColor(np.hstack(panels), cv2.COLOR_RGB2BGR))
    full, mask = pipeline.mask_for(prepared, prob, 0.5)
    nails = geometry.geometry(mask, full)
    pic = draw_geometry(rgb, nails, 720 / rgb.shape[0])
    cv2.putText(pic, "outline (magenta), box (yellow), long axis (cyan), width (green)", (10, 24),
                cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1, cv2.LINE_AA)
    cv2.imwrite(str(ROOT / "docs" / "geometry.png"), cv2.cvtColor(pic, cv2.COLOR_RGB2BGR))
    print(f"{len(nails)} nails; wrote docs/tryon.png and docs/geometry.png")


if __name__ == "__main__":
    main()
