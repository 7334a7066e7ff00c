"""Runner answers: their media type worked out once, not per call.

BentoML derives an API's answer media type from the output model's JSON schema on every call (~0.3 ms
of pydantic schema generation per runner request, the hot path); it never changes for a method, so
the (private) ``output_spec.media_type`` of each API method is set to it once.
"""

from __future__ import annotations


def fixed_output_media_type(service) -> None:
    for name, api in service.apis.items():
        spec = getattr(api, "output_spec", None)
        if spec is None or not callable(getattr(spec, "mime_type", None)):
            raise RuntimeError(f"BentoML's API method {name!r} has no output_spec.mime_type(): "
                               "nailseg/compat/media_type.py cannot fix its media type")
        spec.media_type = spec.mime_type()
