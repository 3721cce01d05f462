"""The ASGI layer around the routes: a body size limit, credentials kept out of logs, no tracebacks.

- :class:`BodyLimit`: a body over ``max_body`` bytes (1 MiB) gets 413, whether ``Content-Length``
  says so up front or the body streams past it.
- :class:`RedactQueryCredentials`: a query parameter that looks like a credential (``api_key=``,
  ``token=``…, or any value shaped like a secret key) is replaced by ``[redacted]`` in the request
  before anything (the server's access log included) reads it, and a secret-shaped path segment
  is replaced before the access log writes the path. Keys are only accepted in the
  ``Authorization`` header, so such a request gets 401 anyway; this keeps the key out of the logs.
- :class:`Guard`: an exception no handler took becomes a 500 ``unexpected_state`` JSON answer
  (the traceback goes to the log, never to the client).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MAX_BODY", "BodyLimit", "Guard", "RedactQueryCredentials"]

logger = logging.getLogger("stepwork.http")

MAX_BODY = 1024 * 1024
_CREDENTIAL_NAMES = {"api_key", "apikey", "api-key", "key", "token", "access_token", "secret", "password",
                     "authorization", "auth", "x-api-key"}
_SECRET_SHAPE = re.compile(r"sk_[A-Za-z0-9_-]{20,}")
_SECRET_BYTES = re.compile(rb"sk_[A-Za-z0-9_-]{20,}")


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


def _redacted(query: bytes) -> bytes | None:
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return None
    changed = False
    out = []
    for name, value in pairs:
        if name.lower() in _CREDENTIAL_NAMES or _SECRET_SHAPE.search(value):
            value, changed = "[redacted]", True
        out.append((name, value))
    return urlencode(out).encode("latin-1") if changed else None


class RedactQueryCredentials:
    """Credentials in the query string are replaced before the request is read or logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("query_string"):
            replaced = _redacted(scope["query_string"])
            if replaced is not None:
                # In place: the server's access log reads this same scope.
                scope["query_string"] = replaced

        async def redacting_send(message: Message) -> None:
            # A secret pasted into the path: routed as it is, logged (at the answer) without it.
            if message["type"] == "http.response.start":
                if scope.get("path"):
                    scope["path"] = _SECRET_SHAPE.sub("[redacted]", scope["path"])
                if scope.get("raw_path"):
                    scope["raw_path"] = _SECRET_BYTES.sub(b"[redacted]", scope["raw_path"])
            await send(message)

        await self.app(scope, receive, redacting_send)


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
            logger.exception("%s %s failed unexpectedly", scope.get("method"), scope.get("path"))
            if not started:
                await _send_json(send, 500, {"type": "unexpected_state",
                                             "message": "An unexpected error occurred; the server's log has "
                                                        "the details."})
