"""``KnownPathsOnly`` (nailseg/api/known_paths.py) around every service's whole ASGI app.

BentoML builds that app in the private ``_bentoml_sdk.Service.to_asgi`` and puts its own metrics
middleware outermost; ``add_asgi_middleware`` only adds layers inside it, so the wrapper has to go
around ``to_asgi``'s result.
"""

from __future__ import annotations

import functools

from nailseg.api.known_paths import KnownPathsOnly


def known_paths_only() -> None:
    from _bentoml_sdk import Service

    original = getattr(Service, "to_asgi", None)
    if not callable(original):
        raise RuntimeError("_bentoml_sdk.Service.to_asgi is gone: nailseg/compat/asgi.py cannot wrap it")
    if getattr(original, "known_paths_only", False):
        return

    @functools.wraps(original)
    def to_asgi(self, *args, **kwargs):
        return KnownPathsOnly(original(self, *args, **kwargs))

    to_asgi.known_paths_only = True
    Service.to_asgi = to_asgi
