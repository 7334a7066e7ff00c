"""The shared servers, as fixtures (tests/conftest.py registers this module): ``server``, the bundled
model as test_e2e_service.py and its neighbours use it; ``keyed``, the same with keys, CORS, a rate limit
and an inflight cap. Each is module-scoped: a module that asks for one starts its own."""

from __future__ import annotations

import pytest
from support.keys import ADMIN_KEY, BURST, FILE_KEY, KEYS, MAX_INFLIGHT, ORIGIN, RATE
from support.server import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    yield from start_server(tmp_path_factory)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    key_file = tmp_path_factory.mktemp("secret") / "api_keys"  # as a Kubernetes secret is mounted
    key_file.write_text(f"# API keys, one a line\n\n{FILE_KEY}  # the CI client\n")
    yield from start_server(
        tmp_path_factory, UNET_SECURITY_API_KEYS=",".join(KEYS), UNET_SECURITY_ADMIN_KEYS=f"[{ADMIN_KEY}]",
        UNET_SECURITY_API_KEYS_FILE=str(key_file), UNET_SECURITY_CORS_ORIGINS=ORIGIN,
        UNET_LIMITS_RATE_LIMIT_PER_MINUTE=str(RATE), UNET_LIMITS_RATE_LIMIT_BURST=str(BURST),
        UNET_LIMITS_MAX_INFLIGHT_IMAGES=str(MAX_INFLIGHT))
