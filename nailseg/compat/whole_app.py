"""The wrappers around every service's whole ASGI app: ``KnownPathsOnly`` (nailseg/api/known_paths.py),
then ``NoSniff`` (nailseg/api/guard/headers.py) outermost.

BentoML builds that app in the private ``_bentoml_sdk.Service.to_asgi`` and puts its own metrics
middleware (and Starlette its 500 handler) outermost; ``add_asgi_middleware`` only adds layers inside
it, so the wrappers have to go around ``to_asgi``'s result.
"""

from __future__ import annotations

import functools

from nailseg.api.guard.headers import NoSniff
from nailseg.api.known_paths import KnownPathsOnly

WRAPPERS = (KnownPathsOnly, NoSniff)  # innermost first


def around_whole_app() -> None:
    from _bentoml_sdk import Service

    original = getattr(Service, "to_asgi", None)
    if not callable(original):
        raise RuntimeError("_bentoml_sdk.Service.to_asgi is gone: nailseg/compat/whole_app.py cannot wrap it")
    if getattr(original, "around_whole_app", False):
        return

    @functools.wraps(original)
    def to_asgi(self, *args, **kwargs):
        app = original(self, *args, **kwargs)
        for wrapper in WRAPPERS:
            app = wrapper(app)
        return app

    to_asgi.around_whole_app = True
    Service.to_asgi = to_asgi
