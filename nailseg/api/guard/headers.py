"""Headers on every answer (OWASP): ``X-Content-Type-Options: nosniff``, so that no browser reads an
answer as another media type than the one it says (a JSON error or a PNG never runs as HTML or script).

``NoSniff`` wraps BentoML's whole ASGI app (nailseg/compat/whole_app.py), outside BentoML's metrics and
CORS layers, its 500s (Starlette's ``ServerErrorMiddleware``) and 504s, and every layer of the guard:
their answers, the probes, ``/metrics``, ``/docs.json`` and unknown paths carry it too.
"""

from __future__ import annotations

from nailseg.api.guard.asgi import Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")


class NoSniff:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != NOSNIFF[0]]
                message = {**message, "headers": [*headers, NOSNIFF]}
            await send(message)

        await self.app(scope, receive, send_nosniff)
