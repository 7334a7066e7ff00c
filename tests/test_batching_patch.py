"""The private batcher patch (nailseg/compat/batching.py) refuses BentoML versions it was not verified with
(compat's one version gate, VERIFIED)."""

from __future__ import annotations

import types

import bentoml
import pytest

from nailseg import compat
from nailseg.compat import batching


def test_unverified_bentoml_version_fails_loudly(monkeypatch):
    monkeypatch.setattr(bentoml, "__version__", "1.5.0")
    with pytest.raises(RuntimeError, match=r"bentoml 1\.5\.0 \(verified: 1\.4\.40\)"):
        batching.cap_batch_wait(0.0)


def test_changed_dispatcher_hook_fails_loudly():
    changed = types.SimpleNamespace(Optimizer=types.SimpleNamespace(log_outbound=lambda self, n, wait: None))
    with pytest.raises(RuntimeError, match="gone or changed"):
        batching._check_hook(changed)
    with pytest.raises(RuntimeError, match="gone or changed"):
        batching._check_hook(types.SimpleNamespace())


def test_verified_version_caps_the_wait_the_batcher_learns():
    from bentoml._internal.marshal import dispatcher

    assert bentoml.__version__ in compat.VERIFIED["bentoml"]
    seen = []
    original = dispatcher.Optimizer.log_outbound
    try:
        dispatcher.Optimizer.log_outbound = lambda self, n, wait, duration: seen.append(wait)
        batching.cap_batch_wait(0.01)
        dispatcher.Optimizer.log_outbound(None, 1, 5.0, 0.1)
        batching.cap_batch_wait(0.02)  # patching twice wraps the original, not the patch
        dispatcher.Optimizer.log_outbound(None, 1, 5.0, 0.1)
    finally:
        dispatcher.Optimizer.log_outbound = original
    assert seen == [0.01, 0.02]
