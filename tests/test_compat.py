"""The one compatibility folder: every private touch listed, each checked against the verified versions."""

from __future__ import annotations

import ast

import bentoml
import pytest
from conftest import ROOT

from nailseg import compat
from nailseg.compat import media_type

PRIVATE = ("_bentoml_sdk", "_bentoml_impl", "bentoml._internal", "circus")  # uvicorn: its private attributes, in compat/shutdown.py


def _private_imports(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                 [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        found.update(n for n in names if n.startswith(PRIVATE))
    return found


def test_private_internals_are_touched_only_in_the_compat_folder():
    outside = {str(p.relative_to(ROOT)): _private_imports(p)
               for pkg in ("nailseg", "runners", "models_import", "training", "bench") for p in (ROOT / pkg).rglob("*.py")
               if "compat" not in p.parts}
    outside["service.py"] = _private_imports(ROOT / "service.py")
    assert {f: m for f, m in outside.items() if m} == {}


def test_every_patch_module_is_listed():
    listed = {p.name.split(".")[0] for p in compat.PATCHES}
    modules = {p.stem for p in (ROOT / "nailseg" / "compat").glob("*.py")} - {"__init__", "versions"}  # the gate
    assert modules == listed
    assert all(p.tests for p in compat.PATCHES)


def test_the_installed_versions_are_the_verified_ones():
    compat.check_versions()  # what `bentoml serve` does first
    assert bentoml.__version__ in compat.VERIFIED["bentoml"]


def test_another_version_refuses_to_start(monkeypatch):
    from nailseg.compat import versions

    real = versions.installed
    monkeypatch.setattr(versions, "installed", lambda name: "9.9.9" if name == "uvicorn" else real(name))
    with pytest.raises(RuntimeError, match="uvicorn 9.9.9"):
        compat.check_versions()
    with pytest.raises(RuntimeError):
        compat.apply_runner(0.0)


def test_the_media_type_fix_fails_loudly_on_a_changed_api_object():
    class Service:
        apis = {"infer": object()}

    with pytest.raises(RuntimeError, match="output_spec"):
        media_type.fixed_output_media_type(Service)


def test_a_changed_arbiter_is_refused(monkeypatch):
    from bentoml._internal.utils.circus import Arbiter

    from nailseg.compat import shutdown

    def stop(self):  # no exit stack any more
        return None

    monkeypatch.setattr(Arbiter, "stop", stop)
    monkeypatch.setattr(Arbiter, "start", lambda self: None)
    with pytest.raises(RuntimeError, match="Arbiter"):
        shutdown.arbiter_removes_sockets_last()


def test_the_media_type_fix_fails_loudly_when_bentoml_stops_reading_media_type():
    class Spec:
        media_type = None

        @classmethod
        def mime_type(cls) -> str:
            return "application/json"  # derived every time, whatever media_type says

    class Service:
        apis = {"infer": type("Api", (), {"output_spec": Spec})()}

    with pytest.raises(RuntimeError, match="no longer answers its media_type"):
        media_type.fixed_output_media_type(Service)
    assert Spec.media_type is None  # nothing left half-patched


def test_the_media_type_fix_sets_each_derived_media_type_once():
    class Spec:
        media_type = None

        @classmethod
        def mime_type(cls) -> str:
            return cls.media_type or "application/json"

    class Service:
        apis = {"infer": type("Api", (), {"output_spec": Spec})()}

    media_type.fixed_output_media_type(Service)
    assert Spec.media_type == "application/json"


def test_the_start_command_is_bentomls_and_a_moved_one_fails_loudly(monkeypatch):
    from nailseg.compat import start

    assert start.start_http_server().name == start.COMMAND
    monkeypatch.setattr(start, "MODULE", "bentoml_cli._internal.no_such_module")
    with pytest.raises(RuntimeError, match="start-http-server"):
        start.start_http_server()


def test_a_worker_whose_sigterm_handler_is_not_uvicorns_is_refused(monkeypatch):
    import signal

    from nailseg.compat import shutdown

    monkeypatch.setattr(signal, "getsignal", lambda sig: signal.SIG_DFL)
    with pytest.raises(RuntimeError, match="cannot stop it accepting first"):
        shutdown._serving_server()
