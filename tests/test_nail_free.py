"""The bundled model finds no nails where there are none: our own nail-free photos (tests/data/nail_free,
none used in training) and the data set's photos whose masks are empty, through the service's own code at
the precision it serves (``auto``)."""

from __future__ import annotations

import pytest
from conftest import DATA, ROOT, require_bundled

from nailseg.config import load_settings
from training.data import read_mask, read_split
from training.evaluate import engine_for, predict_mask
from training.negatives import FALSE_NAIL_SHARE as MARKED

NAIL_FREE = ROOT / "tests" / "data" / "nail_free"
MAX_MARKED_PHOTOS = 0.02  # the goal: at most 2% of nail-free photos

pytestmark = pytest.mark.slow  # the served precision: int8 quantized in-process first


@pytest.fixture(scope="module")
def engine():
    return engine_for(require_bundled(), load_settings(environ={}))


def marked_share(engine, raw: bytes) -> float:
    return float((predict_mask(engine, raw, 0.5, 10**8) > 0).mean())


@pytest.mark.xfail(strict=True, reason="issue 29: the bundled model marks 31 of these 61 photos (2026-12-08)")
def test_nail_free_photos_come_back_empty(engine):
    photos = sorted(NAIL_FREE.glob("*.jpg"))
    assert len(photos) >= 60
    marked = {p.name: round(s, 4) for p in photos if (s := marked_share(engine, p.read_bytes())) > MARKED}
    assert len(marked) <= MAX_MARKED_PHOTOS * len(photos), marked


@pytest.mark.skipif(not DATA.exists(), reason=f"shared data set not at {DATA}")
@pytest.mark.xfail(strict=True, reason="issue 29: the bundled model marks 6 of the test split's 10 empty masks")
def test_the_data_sets_empty_masks_stay_empty(engine):
    empty = [s for s in read_split(DATA, "test") if not read_mask(s.mask_path).any()]
    assert len(empty) == 10
    marked = {s.stem: round(v, 4) for s in empty if (v := marked_share(engine, s.image_path.read_bytes())) > MARKED}
    assert not marked
