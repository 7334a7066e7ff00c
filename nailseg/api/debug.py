"""The debug endpoints (development.enable_debug_endpoints): GET /api/unet/debug/config, /requests, /outputs.

nailseg/api/endpoints.py serves them with the other GET endpoints only while the key is on (off, no route
serves them: a 404 like any unknown path). The guard lets only admin keys through, and while no admin key is
configured refuses them to everyone (nailseg/api/guard/auth.py): they are never open.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from nailseg.api.answers import answer
from nailseg.api.debug_outputs import saved
from nailseg.api.deps import Deps
from nailseg.api.schemas import (
    DebugConfigResponse,
    DebugOutput,
    DebugOutputsResponse,
    DebugRequestsResponse,
)


async def config(deps: Deps, request: Request) -> Response:
    """The effective settings; keys are SecretStr, which pydantic writes as ********** (never the key)."""
    started = time.perf_counter()
    body = DebugConfigResponse(settings=deps.settings.model_dump(mode="json"))
    return answer(body, request.headers.get("x-request-id", ""), deps.brief, started)


async def requests(deps: Deps, request: Request) -> Response:
    started = time.perf_counter()
    body = DebugRequestsResponse(requests=deps.recent_requests.newest_first())
    return answer(body, request.headers.get("x-request-id", ""), deps.brief, started)


def listing(root: Path) -> list[DebugOutput]:
    """The request folders under ``root``, newest first, with their files (one being removed is left out)."""
    found = []
    for folder in reversed(saved(root)):
        try:
            files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        except OSError:
            continue
        if files:
            found.append(DebugOutput(name=folder.name, request_id=folder.name.partition("-")[2], files=files))
    return found


async def outputs(deps: Deps, request: Request) -> Response:
    started = time.perf_counter()
    dev = deps.settings.development
    body = DebugOutputsResponse(saving=dev.save_debug_outputs, directory=str(dev.debug_output_dir),
                                max_outputs=dev.max_debug_outputs,
                                outputs=await asyncio.to_thread(listing, dev.debug_output_dir))
    return answer(body, request.headers.get("x-request-id", ""), deps.brief, started)

