"""The demo page (GET /api/unet/demo): plain HTML and JavaScript in demo.html, no external assets.

The page re-thresholds in the browser from the heatmap the service returns; for that it needs the
heatmap's colour table, which is written into the page here from the same function that draws it.
Its Content-Security-Policy allows only the page's own inline script and style, by their sha256
(computed here from the page's exact text), and no framing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import typing
from pathlib import Path

import numpy as np

from nailseg.api.schemas import TryOnRequest
from nailseg.images.postprocess import heatmap

PAGE = Path(__file__).with_name("demo.html")
LUT_MARK = "/*JET_LUT*/[]"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)  # the page's own blocks, without attributes
# What the page fetches besides itself: the service's answers, the heatmap (data:), the photo and the
# try-on picture (blob:).
_POLICY = ("default-src 'none'; script-src {script}; style-src {style}; img-src 'self' data: blob:; "
           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@functools.cache
def page() -> str:
    levels = (np.arange(256, dtype=np.float32) / 255)[None, :]
    lut = heatmap(levels)[0].tolist()  # index i: the colour of probability i / 255
    html = PAGE.read_text()
    for mark in (LUT_MARK, "__FINISH_OPTIONS__", "__OPACITY__"):
        assert mark in html, f"{PAGE} lost its {mark} mark"
    return (html.replace(LUT_MARK, json.dumps(lut, separators=(",", ":")))
            .replace("__FINISH_OPTIONS__", _finish_options()).replace("__OPACITY__", f"{_default('opacity'):g}"))


def _default(name: str):
    """The try-on's default for ``name``: written once, in TryOnRequest."""
    return TryOnRequest.model_fields[name].default


def _finish_options() -> str:
    finishes = typing.get_args(TryOnRequest.model_fields["finish"].annotation)
    return "".join(f'<option value="{f}"{" selected" if f == _default("finish") else ""}>{f}</option>'
                   for f in finishes)


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@functools.cache
def headers() -> dict[str, str]:
    """The page's security headers: its Content-Security-Policy, no framing, no referrer."""
    blocks: dict[str, list[str]] = {"script": [], "style": []}
    for tag, text in _INLINE.findall(page()):
        blocks[tag].append(_sha256(text))
    if not all(blocks.values()):
        raise RuntimeError(f"{PAGE} has no inline <script> or <style> block for its policy to allow")
    policy = _POLICY.format(script=" ".join(blocks["script"]), style=" ".join(blocks["style"]))
    return {"Content-Security-Policy": policy, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
