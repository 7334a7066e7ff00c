"""Checks of answers shared by the end-to-end tests: photos as base64, PNGs as arrays, the error shape."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import httpx
import numpy as np


def b64(path_or_bytes) -> str:
    raw = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return base64.b64encode(raw).decode()


def png_array(text: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_UNCHANGED)


def assert_error(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text[:500]
    body = resp.json()
    assert body["success"] is False and body["error"]["code"] == code and body["error"]["message"]
    assert body["request_id"] and resp.headers["x-request-id"] == body["request_id"]
    assert "Traceback" not in resp.text
    assert resp.headers.get("x-content-type-options") == "nosniff"  # every answer (nailseg/api/guard/headers.py)
    return body
