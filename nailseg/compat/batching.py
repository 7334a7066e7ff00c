"""A private patch of BentoML's adaptive batcher, behind compat's version gate (``VERIFIED``).

``cap_batch_wait`` replaces ``bentoml._internal.marshal.dispatcher.Optimizer.log_outbound``, a private
method, read and measured against the BentoML in ``VERIFIED``; on any other version the runner refuses
to start (``check_versions``) rather than patch code it has not seen. To move to a new BentoML: read its
dispatcher, re-run bench/ (single requests after a burst), then add the version to ``VERIFIED``.
"""

from __future__ import annotations

import functools
import inspect

_HOOK_PARAMS = ["self", "n", "wait", "duration"]


def _check_hook(dispatcher) -> None:
    hook = getattr(getattr(dispatcher, "Optimizer", None), "log_outbound", None)
    if hook is None or list(inspect.signature(getattr(hook, "__wrapped__", hook)).parameters) != _HOOK_PARAMS:
        raise RuntimeError("BentoML's dispatcher.Optimizer.log_outbound is gone or changed: cap_batch_wait "
                           "(nailseg/compat/batching.py) cannot patch it")


def cap_batch_wait(cap_seconds: float) -> None:
    """Stop BentoML 1.4's batcher from holding lone requests after a burst.

    Its dispatcher holds a request while ``n * wait_so_far`` is below the *average wait of the last
    50 batches*. After a burst that average is large, and every held request logs the same long
    wait again, so it never decays: in our benchmark single requests were held ~390 ms after a
    concurrency-32 burst (26 ms on a fresh server). Capping the wait it learns at
    ``inference.max_batch_wait_ms`` (default 0) leaves batching opportunistic: batches form from
    requests that queue while the model is busy, and a lone request goes at once.
    """
    from bentoml._internal.marshal import dispatcher

    from nailseg.compat.versions import check_versions

    check_versions()

    _check_hook(dispatcher)
    original = getattr(dispatcher.Optimizer.log_outbound, "__wrapped__", dispatcher.Optimizer.log_outbound)

    @functools.wraps(original)
    def log_outbound(self, n: int, wait: float, duration: float) -> None:
        original(self, n, min(wait, cap_seconds), duration)

    dispatcher.Optimizer.log_outbound = log_outbound
