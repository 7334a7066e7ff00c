"""Runner answers: their media type worked out once, not per call.

BentoML derives an API's answer media type from the output model's JSON schema on every call (~0.3 ms
of pydantic schema generation per runner request, the hot path); it never changes for a method, so
the (private) ``output_spec.media_type`` of each API method is set to it once. That only helps while
``output_spec.mime_type()`` answers ``media_type`` when it is set: each spec is probed first, and one
that does not is refused (RuntimeError), never left deriving it silently.
"""

from __future__ import annotations

_PROBE = "application/x-nailseg-probe"


def fixed_output_media_type(service) -> None:
    for name, api in service.apis.items():
        spec = getattr(api, "output_spec", None)
        if spec is None or not callable(getattr(spec, "mime_type", None)) or not hasattr(spec, "media_type"):
            raise RuntimeError(f"BentoML's API method {name!r} has no output_spec.mime_type() and media_type: "
                               "nailseg/compat/media_type.py cannot fix its media type")
        derived, given = spec.mime_type(), spec.media_type
        spec.media_type = _PROBE
        read = spec.mime_type()
        spec.media_type = given
        if read != _PROBE:
            raise RuntimeError(f"BentoML's output_spec.mime_type() of {name!r} no longer answers its media_type: "
                               "nailseg/compat/media_type.py's fix would do nothing; re-verify it")
        spec.media_type = derived
