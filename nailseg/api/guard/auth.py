"""Who may call what: API keys, admin keys, open paths, and what /model-info may reveal.

Keys come from ``security.api_keys`` / ``admin_keys`` (config or ``UNET_SECURITY_*``) and from
``security.api_keys_file`` / ``admin_keys_file`` (one key a line, blank lines and ``#`` comments
ignored: a mounted Kubernetes secret). With no key at all the service is open. Keys are kept only
as SHA-256 digests and compared in constant time against every stored digest; they are never logged.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Iterable

from nailseg.api.guard.asgi import Receive, Scope, Send, state
from nailseg.api.guard.error_shape import Refusals
from nailseg.config import ConfigError, SecuritySettings
from nailseg.errors import ErrorCode


class Role(enum.IntEnum):
    ANONYMOUS = 0
    CLIENT = 1  # an API key
    ADMIN = 2  # an admin key: also an API key


@dataclass(frozen=True)
class Caller:
    role: Role
    key_id: str | None = None  # a short digest of the key: names the caller (rate limits), reveals nothing


@dataclass(frozen=True)
class Refusal:
    code: ErrorCode
    message: str


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def read_key_file(path: Path) -> list[str]:
    """Keys in a file, one a line; blank lines and # comments are ignored."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the key file ({e.strerror})") from None
    keys = [line.split("#", 1)[0].strip() for line in lines]
    keys = [k for k in keys if k]
    if any(len(k) < 16 or any(c.isspace() for c in k) for k in keys):
        raise ConfigError(f"{path}: each key must be at least 16 characters, without spaces")
    return keys


class KeyRing:
    def __init__(self, api_keys: Iterable[str] = (), admin_keys: Iterable[str] = ()):
        self._admin = [_digest(k) for k in admin_keys]
        self._all = [*(_digest(k) for k in api_keys), *self._admin]

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> KeyRing:
        api = [k.get_secret_value() for k in security.api_keys]
        admin = [k.get_secret_value() for k in security.admin_keys]
        if security.api_keys_file is not None:
            api += read_key_file(security.api_keys_file)
        if security.admin_keys_file is not None:
            admin += read_key_file(security.admin_keys_file)
        return cls(api, admin)

    @property
    def enabled(self) -> bool:
        return bool(self._all)

    @property
    def has_admin(self) -> bool:
        return bool(self._admin)

    def identify(self, presented: str | None) -> Caller:
        """The caller a presented key names; every stored digest is compared (no early exit)."""
        if not presented:
            return Caller(Role.ANONYMOUS)
        digest = _digest(presented)
        known = admin = False
        for stored in self._all:
            known |= hmac.compare_digest(digest, stored)
        for stored in self._admin:
            admin |= hmac.compare_digest(digest, stored)
        if not known:
            return Caller(Role.ANONYMOUS)
        return Caller(Role.ADMIN if admin else Role.CLIENT, digest.hex()[:16])


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    auth = headers.get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return key or None


@dataclass
class AccessPolicy:
    """Path-based: public paths are open, admin paths need an admin key, the rest an API key. Debug paths
    are never open: they need an admin key even where the service is open, and while none is configured
    nobody may call them."""

    keys: KeyRing
    public_paths: frozenset[str] = frozenset()
    admin_paths: frozenset[str] = field(default_factory=frozenset)
    debug_paths: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, security: SecuritySettings, admin_paths: Iterable[str],
                      debug_paths: Iterable[str] = ()) -> AccessPolicy:
        return cls(KeyRing.from_settings(security), frozenset(security.public_paths), frozenset(admin_paths),
                   frozenset(debug_paths))

    def is_public(self, path: str) -> bool:
        return path not in self.debug_paths and (not self.keys.enabled or path in self.public_paths)

    def check(self, path: str, headers: dict[bytes, bytes]) -> Caller | Refusal:
        """The caller, or why it is refused (401: no or unknown key; 403: a key without the right)."""
        caller = self.keys.identify(presented_key(headers))
        debug = path in self.debug_paths
        if debug and not self.keys.has_admin:
            return Refusal(ErrorCode.FORBIDDEN, "debug endpoints need an admin key, and none is configured: set "
                                                "security.admin_keys (they are never open)")
        if self.is_public(path):
            return caller
        if caller.role is Role.ANONYMOUS:
            return Refusal(ErrorCode.UNAUTHORIZED, "a valid API key is required: send 'Authorization: Bearer <key>' "
                                                   "or 'X-API-Key: <key>'")
        if (debug or path in self.admin_paths) and caller.role is not Role.ADMIN:
            none = "" if self.keys.has_admin else ", and none is configured (security.admin_keys)"
            return Refusal(ErrorCode.FORBIDDEN, f"this endpoint needs an admin key{none}")
        return caller


def shown_checkpoint_path(path: str, expose_server_paths: bool) -> str:
    """What /model-info says about the checkpoint's origin: its file name unless told otherwise."""
    return path if expose_server_paths else PurePath(path).name


class Access:
    """ASGI layer: refuses a request whose key does not open its path (401/403); names the caller for the
    rate limit (its key's short digest, else its address)."""

    def __init__(self, app, *, policy: AccessPolicy, refusals: Refusals):
        self.app, self.policy, self.refusals = app, policy, refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        caller = self.policy.check(scope["path"], dict(scope["headers"]))
        if isinstance(caller, Refusal):
            headers = [(b"www-authenticate", b'Bearer realm="unet"')] if caller.code is ErrorCode.UNAUTHORIZED else []
            return await self.refusals.send(scope, send, caller.code, caller.message, headers=headers)
        if caller.key_id:
            state(scope)["caller"] = caller.key_id
        await self.app(scope, receive, send)
