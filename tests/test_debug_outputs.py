"""The debug outputs' writer and the per-request stage times, in process (on a real server:
test_e2e_debug.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone

import numpy as np
from conftest import example_photos

from nailseg import metrics
from nailseg.api import debug_outputs
from nailseg.api.debug_outputs import DebugOutputs, folder_name, saved
from nailseg.images import pipeline
from nailseg.model.spec import Preprocessing

PREP = Preprocessing(image_size=(32, 32))


def _kept(photo_index: int = 0, index: int | None = None) -> debug_outputs.KeptImage:
    prepared = pipeline.prepare_bytes(example_photos()[photo_index][0].read_bytes(), PREP, 10**7)
    prob = np.random.default_rng(photo_index).random((32, 32), dtype=np.float32)
    return debug_outputs.KeptImage(index, prepared, prob, 0.5)


def _written(outputs: DebugOutputs) -> None:
    """Waits for the writer's queue to drain."""
    outputs._pool.submit(lambda: None).result(timeout=60)


def test_keeps_the_newest_requests_complete_and_as_served(tmp_path):
    outputs = DebugOutputs(tmp_path / "out", max_requests=3)
    start = datetime(2026, 12, 2, 18, 15, tzinfo=timezone.utc)
    kept = [_kept(i % 4) for i in range(5)]
    for i, k in enumerate(kept):
        outputs.save(f"req-{i}", start + timedelta(milliseconds=i), [k])
    _written(outputs)
    folders = saved(tmp_path / "out")
    assert [f.name for f in folders] == [folder_name(start + timedelta(milliseconds=i), f"req-{i}") for i in (2, 3, 4)]
    assert folders[0].name == "20261202T181500.002000Z-req-2"
    for folder, k in zip(folders, kept[2:]):
        assert sorted(p.name for p in folder.iterdir()) == ["input.jpg", "mask.png", "overlay.png"]
        assert (folder / "input.jpg").read_bytes() == k.prepared.raw
        assert (folder / "mask.png").read_bytes() == pipeline.mask_picture(k.prepared, k.prob, 0.5, overlay=False)
        assert (folder / "overlay.png").read_bytes() == pipeline.mask_picture(k.prepared, k.prob, 0.5, overlay=True)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # nothing half written left


def test_a_batch_is_one_folder_with_a_subfolder_per_image_index(tmp_path):
    outputs = DebugOutputs(tmp_path, max_requests=5)
    outputs.save("batch:1", datetime.now(timezone.utc), [_kept(0, index=0), _kept(1, index=2)])
    _written(outputs)
    (folder,) = saved(tmp_path)
    assert folder.name.endswith("-batch_1")  # ':' is kept out of file names
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.*")) == [
        "0/input.jpg", "0/mask.png", "0/overlay.png", "2/input.jpg", "2/mask.png", "2/overlay.png"]


def test_a_failure_to_write_is_logged_once_and_raises_nothing(tmp_path, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the folder should be")
    outputs = DebugOutputs(blocked / "out", max_requests=3)
    with caplog.at_level(logging.WARNING, logger="unet.api"):
        for i in range(3):
            outputs.save(f"r{i}", datetime.now(timezone.utc), [_kept()])
        _written(outputs)
    warnings = [r for r in caplog.records if "debug outputs" in r.getMessage()]
    assert len(warnings) == 1 and "cannot write" in warnings[0].getMessage()


def test_keep_collects_only_inside_collecting_and_skips_pixels_without_a_photo():
    k = _kept()
    debug_outputs.keep([k.prepared], [k.prob], 0.5)  # nothing is collecting: nothing happens
    no_photo = pipeline.PreparedImage(size=(32, 32), model_input=k.prepared.model_input, raw=b"")
    with debug_outputs.collecting() as kept:
        debug_outputs.keep([k.prepared, no_photo, k.prepared], [k.prob] * 3, 0.4, indexes=range(3))
    assert [(x.index, x.threshold) for x in kept] == [(0, 0.4), (2, 0.4)]


def test_request_stages_sum_what_timed_measures_worker_threads_included():
    m = metrics.get()

    async def request():
        with metrics.request_stages() as stages:
            with m.timed("decode"):
                await asyncio.to_thread(time.sleep, 0.01)

            def encode():
                with m.timed("encode"):
                    pass
            await asyncio.to_thread(encode)
            await asyncio.to_thread(encode)
        return stages

    stages = asyncio.run(request())
    assert set(stages) == {"decode", "encode"} and stages["decode"] > 0
    with m.timed("decode"):  # outside a request: only the metric
        pass
