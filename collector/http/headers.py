"""Security headers on every HTTP response (docs/security.md).

``X-Content-Type-Options: nosniff`` everywhere (API JSON, CSV, metrics, static
files): a browser must never run a response as another type than the one it
says. Every page of the dashboard (``/`` and anything under ``/static``) also
carries the page policy: its own files only, and no framing by other sites.

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware, which would
buffer streamed CSV exports through an extra task per request.
"""

from __future__ import annotations

from typing import Any

NOSNIFF = (b"x-content-type-options", b"nosniff")
PAGE_POLICY = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_PAGE_HEADERS = [(k.lower().encode(), v.encode()) for k, v in PAGE_POLICY.items()]


class SecurityHeaders:
    """Adds the headers above to every ``http.response.start`` of ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        extra = [NOSNIFF]
        if path == "/" or path.startswith("/static"):
            extra += _PAGE_HEADERS

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
