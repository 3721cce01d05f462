"""The headers every ``/app`` answer carries, and the small checks of the login form.

``/app`` pages get a strict Content-Security-Policy: scripts, styles and images from this origin's
files only (no inline script, no inline style, no ``eval``), requests to this origin only, no
framing, forms posting here only. Pages that show data are never cached (``no-store``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "SecurityHeaders", "safe_next", "same_origin"]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


class SecurityHeaders:
    """Adds the headers above to every answer under ``/app`` (pages: ``Cache-Control: no-store``)."""

    def __init__(self, app: ASGIApp, prefix: str = "/app") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == self.prefix or path.startswith(self.prefix + "/")):
            await self.app(scope, receive, send)
            return
        static = path.startswith(self.prefix + "/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers[name] = value
                if not static:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def safe_next(value: str | None, default: str) -> str:
    """Where to go after the login: a path under ``/app/`` of this site, else ``default``."""
    if not value or len(value) > 2048 or "\\" in value or any(ord(c) < 32 for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/app/") or value.startswith("//"):
        return default
    return value


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether a request's ``Origin`` (absent: allowed, as for older browsers) names its own ``Host``."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    return bool(host) and parts.netloc == host
