"""Response bodies as JSON bytes, with orjson (why, measured: docs/performance.md, bench/results/)."""

from __future__ import annotations

import orjson
from pydantic import BaseModel


def dump(body: BaseModel) -> bytes:
    """Fields that do not apply (None) are left out: absent, not null."""
    return orjson.dumps(body.model_dump(mode="json", exclude_none=True))
