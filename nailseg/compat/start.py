"""How each service of the Bento starts on its own (the Kubernetes manifests, docs/deploying.md): BentoML's
``start-http-server`` command, which lives in the private module ``bentoml_cli._internal.start`` (the
image's entrypoint runs ``python -m bentoml_cli._internal.start start-http-server ARGS BENTO``).

``start_http_server`` returns that click command, checked: a BentoML that moved or renamed it fails
loudly here (RuntimeError), before a manifest's arguments are checked against it."""

from __future__ import annotations

import importlib

MODULE = "bentoml_cli._internal.start"
COMMAND = "start-http-server"


def command_line(python: str) -> list[str]:
    """The command line that starts one service: ``[python, -m, MODULE, COMMAND]`` (then its options)."""
    return [python, "-m", MODULE, COMMAND]


def start_http_server():
    """BentoML's ``start-http-server`` click command (its options are what the manifests may pass)."""
    try:
        group = importlib.import_module(MODULE).build_start_command()
        return group.commands[COMMAND]
    except (ImportError, AttributeError, KeyError) as e:
        raise RuntimeError(f"BentoML's {MODULE} has no {COMMAND!r} command ({e!r}): the runner's start in "
                           "deploy/k8s/ and tests/test_split_services.py must be re-verified "
                           "(nailseg/compat/start.py)") from None
