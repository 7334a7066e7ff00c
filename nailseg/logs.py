"""Request ids in error logs: every ERROR record logged while a request is handled names its id.

The middleware sets ``request_id`` for each request; the record factory installed by ``install``
prefixes ERROR and CRITICAL messages (BentoML's traceback for an API that raised, ours) with
``[request <id>]``, so the id a 500 body tells the client to look up is in the log, once, next to
its traceback.
"""

from __future__ import annotations

import contextvars
import logging

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("unet_request_id", default=None)


def install() -> None:
    """Idempotent: wraps the process's log record factory once."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_unet_request_ids", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        rid = request_id.get()
        record.request_id = rid
        if rid is not None and record.levelno >= logging.ERROR:
            record.msg = f"[request {rid}] {record.msg}"
        return record

    factory._unet_request_ids = True
    logging.setLogRecordFactory(factory)
