"""The layers, as the tree shows them, hold: each subpackage imports only the layers below it, the
API side never reaches torch or OpenVINO, serving never reaches the offline import code, and no
module imports itself through a circle (a circle makes import order matter and hides the layers)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest
from conftest import ROOT

PACKAGES = ("nailseg", "runners", "models_import", "training", "bench")
TOP_MODULES = ("service",)
HEAVY = {"torch", "torchvision", "openvino", "nncf", "safetensors"}  # what the API process must never load

# What each part of nailseg may import (besides itself and the shared base modules).
BASE = {"nailseg.config", "nailseg.errors", "nailseg.logs", "nailseg.metrics"}
ALLOWED = {
    "nailseg.compat": {"nailseg.api.known_paths", "nailseg.api.guard.headers"},  # its wrappers of BentoML's app
    "nailseg.model": set(),
    "nailseg.images": {"nailseg.model.spec"},
    "nailseg.inference": {"nailseg.model", "nailseg.images"},
    "nailseg.store": {"nailseg.model", "nailseg.images", "nailseg.inference"},
    # the protocol's handlers stand on the API's collaborators and guard; only nailseg.api.endpoints binds them
    "nailseg.oip.serving": {"nailseg.oip", "nailseg.api", "nailseg.images"},
    "nailseg.oip": set(),  # the protocol's codec: no HTTP, nothing of the service
    "nailseg.api": {"nailseg.model.spec", "nailseg.images", "nailseg.compat", "nailseg.store.entries",
                    "nailseg.oip"},
    "nailseg.client": {"nailseg.images", "nailseg.api.routes", "nailseg.api.schemas"},
}
OFFLINE = {"nailseg.store.importer", "nailseg.store.quantize"}  # `python -m models_import` only


def _imports(path) -> tuple[set[str], set[str]]:
    """(project modules, third-party top-level packages) a file imports, anywhere in it."""
    found, external = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            names += [node.module] if "." in node.module or node.module in TOP_MODULES else []  # not the bare package
            top = node.module.split(".")[0]
            if top in PACKAGES or top in TOP_MODULES:
                found.update(names)
            else:
                external.add(top)
        elif isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                (found.add(a.name) if top in PACKAGES or top in TOP_MODULES else external.add(top))
    return found, external


def _modules() -> dict:
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts): p
               for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    modules.update({name: ROOT / f"{name}.py" for name in TOP_MODULES})
    return {name.removesuffix(".__init__"): p for name, p in modules.items()}


def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {i for i in _imports(p)[0] if i in modules and i != name} for name, p in modules.items()}


def externals() -> dict[str, set[str]]:
    return {name: _imports(p)[1] for name, p in _modules().items()}


def reach(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return seen


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _layer(module: str) -> str | None:
    return next((layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")), None)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circles_anywhere():
    assert find_cycle(graph()) is None


def test_each_layer_imports_only_the_layers_below_it():
    wrong = []
    for module, targets in graph().items():
        layer = _layer(module)
        if layer is None:
            continue
        for target in targets:
            ok = (target in BASE or _layer(target) == layer
                  or any(target == a or target.startswith(a + ".") for a in ALLOWED[layer]))
            if not ok:
                wrong.append(f"{module} -> {target}")
    assert not wrong


def test_only_the_registry_binds_the_protocols_handlers():
    edges = graph()
    assert {m for m, targets in edges.items() if "nailseg.oip.serving" in targets} == {"nailseg.api.endpoints",
                                                                                    "service"}


def test_no_two_modules_share_a_file_name():
    names = [p.name for p in (ROOT / "nailseg").rglob("*.py") if p.name != "__init__.py"]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_base_modules_import_no_layer():
    edges = graph()
    assert all(not (edges[m] - BASE) for m in BASE)


@pytest.mark.parametrize("layer", ["nailseg.images", "nailseg.api", "nailseg.oip", "nailseg.client",
                                   "nailseg.model.spec"])
def test_api_side_never_reaches_torch_or_openvino(layer):
    edges, ext = graph(), externals()
    for module in [m for m in edges if m == layer or m.startswith(layer + ".")]:
        reached = reach(edges, module)
        assert not any(_layer(m) in ("nailseg.inference", "nailseg.store") and m != "nailseg.store.entries"
                       for m in reached), module
        heavy = {m: ext[m] & HEAVY for m in reached if ext[m] & HEAVY}
        assert not heavy, f"{module} reaches {heavy}"


def test_serving_never_reaches_the_offline_import_code():
    edges = graph()
    for start in ("service", "runners.unet_runner"):
        assert not reach(edges, start) & OFFLINE, start


def test_the_api_process_loads_no_torch(bundled_store):
    """What `bentoml serve` imports in every API worker: service.py and, through bentoml.depends, the
    runner's module. The runner imports torch inside its service class only."""
    code = ("import sys, service; heavy = sorted(m for m in sys.modules if m.split('.')[0] in %r); "
            "assert not heavy, heavy; print('ok')" % (HEAVY,))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "BENTOML_HOME": str(bundled_store)})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
