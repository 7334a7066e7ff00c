"""The demo page (GET /api/unet/demo): plain HTML and JavaScript in demo.html, no external assets.

The page re-thresholds in the browser from the heatmap the service returns; for that it needs the
heatmap's colour table, which is written into the page here from the same function that draws it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from nailseg.images.postprocess import heatmap

PAGE = Path(__file__).with_name("demo.html")
LUT_MARK = "/*JET_LUT*/[]"


@functools.cache
def page() -> str:
    levels = (np.arange(256, dtype=np.float32) / 255)[None, :]
    lut = heatmap(levels)[0].tolist()  # index i: the colour of probability i / 255
    html = PAGE.read_text()
    assert LUT_MARK in html, f"{PAGE} lost its {LUT_MARK} mark"
    return html.replace(LUT_MARK, json.dumps(lut, separators=(",", ":")))
