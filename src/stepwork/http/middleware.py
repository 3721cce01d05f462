"""The ASGI layer around the routes: a body size limit, credentials kept out of logs, no tracebacks.

- :class:`BodyLimit`: a body over ``max_body`` bytes (1 MiB) gets 413, whether ``Content-Length``
  says so up front or the body streams past it.
- :class:`RedactQueryCredentials`: keeps keys sent in a URL out of the logs, never changing what
  the app sees. It installs :class:`RedactingFilter` on uvicorn's access logger, which writes
  ``[redacted]`` in place of (1) the value of a query parameter named like a credential
  (``api_key``, ``token``, ``password``…, see ``CREDENTIAL_NAMES``), (2) a query value or path
  segment that is, as a whole, shaped like a stored key (``sk_`` and 43 URL-safe characters), and
  (3) a query value or path segment whose SHA-256 is a static key's (``STEPWORK_API_KEYS``) of an
  app this middleware served. A key pasted inside a longer value, or a stored key's secret cut
  short, is not recognised. The ``Guard``'s log line of a failed request redacts its path the same way.
- :class:`Guard`: an exception no handler took becomes a 500 ``unexpected_state`` JSON answer
  (the traceback goes to the log, never to the client).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CREDENTIAL_NAMES", "MAX_BODY", "BodyLimit", "Guard", "RedactQueryCredentials", "RedactingFilter",
           "redact_url"]

logger = logging.getLogger("stepwork.http")

MAX_BODY = 1024 * 1024
CREDENTIAL_NAMES = frozenset({"api_key", "apikey", "api-key", "key", "token", "access_token", "secret",
                              "password", "authorization", "auth", "x-api-key"})
_KEY_SHAPE = re.compile(r"sk_[A-Za-z0-9_-]{43}")  # a stored key's secret, as ApiKeys.create makes it
_REDACTED = "[redacted]"
_static_digests: set[str] = set()  # SHA-256 of the static keys of the apps served here
_registered: set[int] = set()


async def _send_json(send: Send, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class _TooLarge(Exception):
    pass


class BodyLimit:
    """413 for request bodies over ``max_body`` bytes."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    def _message(self) -> dict[str, str]:
        return {"type": "invalid_data",
                "message": f"The request body is over {self.max_body} bytes; send less than {self.max_body} bytes."}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_large = int(value) > self.max_body
                except ValueError:
                    too_large = False
                if too_large:
                    await _send_json(send, 413, self._message())
                    return
        received = 0
        exceeded = answered = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    exceeded = True
                    raise _TooLarge
            return message

        async def checked_send(message: Message) -> None:
            # Whatever the app answers to a body cut short (a 400, say), the client gets the 413.
            nonlocal answered
            if not exceeded:
                await send(message)
            elif message["type"] == "http.response.start" and not answered:
                answered = True
                await _send_json(send, 413, self._message())

        with contextlib.suppress(_TooLarge):
            await self.app(scope, limited_receive, checked_send)
        if exceeded and not answered:
            await _send_json(send, 413, self._message())


def _is_key(text: str) -> bool:
    return bool(_KEY_SHAPE.fullmatch(text)) or (
        bool(_static_digests) and hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() in _static_digests)


def _redact_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        plain_name = unquote_plus(name).lower()
        plain_name = plain_name[:-2] if plain_name.endswith("[]") else plain_name
        if sep and (plain_name in CREDENTIAL_NAMES or _is_key(unquote_plus(value))):
            part = f"{name}={quote(_REDACTED)}"
        parts.append(part)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """``url`` (a path with its query) as it may be logged: keys replaced by ``[redacted]``."""
    path, sep, query = url.partition("?")
    path = "/".join(_REDACTED if segment and _is_key(unquote(segment)) else segment for segment in path.split("/"))
    return path + sep + (_redact_query(query) if sep else "")


class RedactingFilter(logging.Filter):
    """Rewrites uvicorn's access-log records (``client, method, path?query, version, status``) so that
    the URL carries no key."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the URL argument of the record in place; the record is always logged."""
        args: Any = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_url(args[2]), *args[3:])
        return True


_FILTER = RedactingFilter()


def _register(app: Any) -> None:
    """Learn the static keys' digests of the app (once per app)."""
    if app is None or id(app) in _registered:
        return
    _registered.add(id(app))
    auth = getattr(getattr(getattr(app, "state", None), "stepwork", None), "auth", None)
    _static_digests.update(getattr(auth, "_static", ()))  # Authenticator keeps the static keys' SHA-256


class RedactQueryCredentials:
    """Keys in a request's URL are kept out of the access log (the request itself is left as it is)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        access = logging.getLogger("uvicorn.access")
        if _FILTER not in access.filters:
            access.addFilter(_FILTER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            _register(scope.get("app"))
        await self.app(scope, receive, send)


class Guard:
    """What escaped every handler: logged, answered 500 JSON without the traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("%s %s failed unexpectedly", scope.get("method"), redact_url(str(scope.get("path"))))
            if not started:
                await _send_json(send, 500, {"type": "unexpected_state",
                                             "message": "An unexpected error occurred; the server's log has "
                                                        "the details."})
