"""Unknown paths, outside everything BentoML puts in front of the routes.

``KnownPathsOnly`` renames a request for a path that no route serves to ``UNMATCHED_PATH`` (then: 404).
BentoML's metrics middleware labels each request with its raw path, so every random path would add
series to /metrics; renamed, all of them share one label. Starlette's router never sees the original
either, so ``/segment/`` (trailing slash) is a 404, not a redirect to the ``Host`` the client sent.
It has to wrap BentoML's whole ASGI app: nailseg/compat/whole_app.py puts it there.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Match, Mount
from starlette.staticfiles import StaticFiles

from nailseg.api.guard.asgi import Receive, Scope, Send

UNMATCHED_PATH = "/__unmatched__"  # what every path that no route serves is called past KnownPathsOnly
PROTOCOL_PREFIXES = ("/v2/",)
# The protocol's server metadata is GET /v2: the root of the app mounted at /v2, which Starlette's Mount
# answers only as /v2/.
MOUNT_ROOTS = {"/v2": "/v2/"}  # an unknown path under one keeps it (/v2/__unmatched__): its 404 is the protocol's



def serves(routes: list[BaseRoute], scope: Scope) -> bool:
    """Whether a route (through mounted apps, and static files that exist) serves this path."""
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if not isinstance(route, Mount):
            return True  # FULL, or PARTIAL: the path exists, the method is wrong (405)
        inner = {**scope, **child}
        if isinstance(route.app, StaticFiles):
            _, stat = route.app.lookup_path(route.app.get_path(inner))
            if stat is not None:
                return True
        elif hasattr(route.app, "routes"):  # a Starlette/FastAPI app or router
            if serves(route.app.routes, inner):
                return True
        else:
            return True  # an opaque ASGI app: it decides
    return False


class KnownPathsOnly:
    """Renames a request for a path that no route serves to ``UNMATCHED_PATH`` (then: 404).

    BentoML's metrics middleware labels each request with its raw path, so every random path
    would add series to /metrics; renamed, all of them share one label. Starlette's router never
    sees the original either, so ``/segment/`` (trailing slash) is a 404, not a redirect to the
    ``Host`` the client sent.
    """

    def __init__(self, app):
        self.app = app  # the service's Starlette app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in MOUNT_ROOTS:
            root = MOUNT_ROOTS[scope["path"]]
            scope = {**scope, "path": root, "raw_path": root.encode()}
        if scope["type"] == "http" and not serves(self.app.router.routes, scope):
            prefix = next((p[:-1] for p in PROTOCOL_PREFIXES if scope["path"].startswith(p)), "")
            scope = {**scope, "path": prefix + UNMATCHED_PATH, "raw_path": (prefix + UNMATCHED_PATH).encode()}
        await self.app(scope, receive, send)
