"""Debug outputs (development.save_debug_outputs): each image request's photo as it was sent, its mask and
its overlay, in a folder of its own under development.debug_output_dir, written in a worker thread.

A folder is named ``<UTC time>-<request id>`` (sortable by time, e.g. ``20261202T181500.123456Z-<id>``)
and holds ``input.<jpg|png|bmp>`` (the photo's bytes), ``mask.png`` (the mask at the photo's size, as
/mask serves it) and ``overlay.png`` (as /mask?overlay=true draws it); a batch request's images are
subfolders named by their index in the request. A folder appears only once complete (written under a
hidden name, then renamed). After each write the oldest folders beyond ``max_requests`` are removed (the
API worker processes share the folder, and so the bound). A failure to write is logged once (until a
write succeeds again) and never fails a request: it has been answered already.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

import numpy as np

from nailseg.images import pipeline
from nailseg.images.codec import file_extension
from nailseg.images.pipeline import PreparedImage

log = logging.getLogger("unet.api")
MAX_PENDING = 16  # requests waiting for the writer; past it a request's are skipped (a slow disk holds no photos)
INPUT, MASK, OVERLAY = "input", "mask.png", "overlay.png"  # input.<jpg|png|bmp>
_WRITING = ".writing-"  # a folder being written: hidden, renamed into place when complete
_UNSAFE = re.compile(r"[^\w.-]")


@dataclass(frozen=True)
class KeptImage:
    """One segmented image of a request, as its debug outputs need it."""

    index: int | None  # its position in a batch request; None: the request's only image
    prepared: PreparedImage
    prob: np.ndarray  # the model's probabilities, at the model's size
    threshold: float


# this request's images, while the debug outputs are saved (RequestTrace, nailseg/api/request_trace.py)
_kept: contextvars.ContextVar[list[KeptImage] | None] = contextvars.ContextVar("unet_debug_kept", default=None)


@contextlib.contextmanager
def collecting() -> Iterator[list[KeptImage]]:
    """The images ``keep`` is handed inside (one request's)."""
    kept: list[KeptImage] = []
    token = _kept.set(kept)
    try:
        yield kept
    finally:
        _kept.reset(token)


def keep(prepared: list[PreparedImage], probs: list[np.ndarray], threshold: float,
         indexes: list[int] | range | None = None) -> None:
    """A request's segmented images, for its debug outputs (outside ``collecting``: nothing). ``indexes``: their
    positions in a batch request (None: the request's only image). Pixels sent without a photo are skipped."""
    kept = _kept.get()
    if kept is None:
        return
    for i, (p, prob) in enumerate(zip(prepared, probs)):
        if p.raw:
            kept.append(KeptImage(None if indexes is None else indexes[i], p, prob, threshold))


def folder_name(when: datetime, request_id: str) -> str:
    """``20261202T181500.123456Z-<request id>`` (``when`` in UTC)."""
    return f"{when:%Y%m%dT%H%M%S}.{when.microsecond:06d}Z-{_UNSAFE.sub('_', request_id)}"


def saved(root: Path) -> list[Path]:
    """The complete request folders under ``root``, oldest first."""
    try:
        return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    except FileNotFoundError:
        return []


def write_request(root: Path, name: str, kept: list[KeptImage]) -> Path:
    """One request's folder, complete (it appears under its name only once every file is written)."""
    temp = root / (_WRITING + name)
    temp.mkdir(parents=True)
    try:
        for k in kept:
            folder = temp if k.index is None else temp / str(k.index)
            folder.mkdir(exist_ok=True)
            (folder / (INPUT + file_extension(k.prepared.raw))).write_bytes(k.prepared.raw)
            (folder / MASK).write_bytes(pipeline.mask_picture(k.prepared, k.prob, k.threshold, overlay=False))
            (folder / OVERLAY).write_bytes(pipeline.mask_picture(k.prepared, k.prob, k.threshold, overlay=True))
        os.rename(temp, root / name)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return root / name


def prune(root: Path, max_requests: int) -> None:
    """Remove the oldest request folders beyond ``max_requests`` (another process may be removing them too)."""
    for old in saved(root)[:-max_requests]:
        shutil.rmtree(old, ignore_errors=True)


class DebugOutputs:
    """Writes requests' debug outputs under ``root`` in one worker thread (in order), keeping ``max_requests``."""

    def __init__(self, root: Path, max_requests: int):
        self.root, self.max_requests = root, max_requests
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="unet-debug-outputs")  # started on first use
        self._slots = threading.BoundedSemaphore(MAX_PENDING)
        self._failing = False

    def save(self, request_id: str, when: datetime, kept: list[KeptImage]) -> None:
        """Queue one answered request's outputs for the worker thread; returns at once."""
        if not kept:
            return
        if not self._slots.acquire(blocking=False):
            return self._failed(f"{MAX_PENDING} requests are waiting to be written; request {request_id}'s skipped")
        self._pool.submit(self._write, folder_name(when, request_id), kept)

    def _write(self, name: str, kept: list[KeptImage]) -> None:
        try:
            write_request(self.root, name, kept)
            prune(self.root, self.max_requests)
            self._failing = False
        except Exception as e:  # disk full, unwritable folder...: the request is answered already
            self._failed(f"cannot write {self.root / name} ({type(e).__name__}: {e})")
        finally:
            self._slots.release()

    def _failed(self, problem: str) -> None:
        if not self._failing:
            log.warning("debug outputs (development.save_debug_outputs): %s; later failures are not logged "
                        "until a write succeeds", problem)
        self._failing = True
