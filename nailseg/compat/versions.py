"""The one version gate: the bentoml, uvicorn and circus versions every patch in nailseg/compat/ was read
and tested against (``VERIFIED``), and ``check_versions``, which every ``apply_*`` and patch calls first."""

from __future__ import annotations

import importlib

VERIFIED = {"bentoml": ("1.4.40",), "uvicorn": ("0.54.0",), "circus": ("0.18.3",)}


def installed(name: str) -> str:
    return importlib.import_module(name).__version__


def check_versions() -> None:
    wrong = {name: installed(name) for name, ok in VERIFIED.items() if installed(name) not in ok}
    if wrong:
        found = ", ".join(f"{n} {v} (verified: {', '.join(VERIFIED[n])})" for n, v in wrong.items())
        raise RuntimeError(f"nailseg/compat patches private internals verified with other versions: {found}. "
                           "Pin the verified versions (requirements.txt) or re-verify each patch in "
                           "nailseg/compat/__init__.py's PATCHES and add the version to VERIFIED.")
