"""The ASGI types the guard's layers share, and the per-request state they hand each other."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

STATE_KEY = "unet"  # scope["state"]["unet"]: request_id, started, caller, images, body (the validated request)


def state(scope: Scope) -> dict[str, Any]:
    """This request's guard state (Starlette's ``request.state`` is the same ``scope["state"]``)."""
    return scope.setdefault("state", {}).setdefault(STATE_KEY, {})


def header(scope: Scope, name: bytes) -> bytes | None:
    return next((v for k, v in scope["headers"] if k == name), None)
