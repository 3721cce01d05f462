"""Who may call the ``/admin`` routes: a request carries an API key in its ``Authorization`` header.

``Authorization: Bearer KEY``, or HTTP Basic with the key as the user name and an empty password
(what Medusa's secret API keys and ``@medusajs/js-sdk`` send). A key is valid when it is one of the
static keys the app was given (``STEPWORK_API_KEYS``) or a stored, unrevoked key
(:class:`~stepwork.http.keys.ApiKeys`). Keys are never read from the query string, never logged,
and compared by their SHA-256 in constant time.

The admin web page (:mod:`stepwork.http.ui`) logs a browser in with a key into a server-side
session: a request without ``Authorization`` that carries the session cookie is authenticated by
that session's key (verified again each time, so a revoked key ends its sessions), and a
state-changing one (any method but GET, HEAD, OPTIONS) must also send the session's CSRF token in the
``X-CSRF-Token`` header.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence

from fastapi import Request

from stepwork.errors import StepworkError
from stepwork.http.keys import ApiKeys, hash_secret
from stepwork.http.ui.sessions import COOKIE, CSRF_HEADER, Session, Sessions

__all__ = ["Authenticator", "credentials_of"]

_UNAUTHORIZED = StepworkError.Types.UNAUTHORIZED
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _refused(why: str) -> StepworkError:
    return StepworkError(_UNAUTHORIZED, f"{why} Send an API key as `Authorization: Bearer KEY` (or HTTP Basic "
                                        "with the key as the user name); `stepwork keys create NAME` makes one.")


def credentials_of(header: str | None) -> str:
    """The key in an ``Authorization`` header value; raises ``unauthorized`` when there is none."""
    if not header:
        raise _refused("No API key.")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _refused("The Basic credentials are not valid base64.") from None
        user, sep, password = decoded.partition(":")
        if not sep or password or not user:
            raise _refused("Basic credentials take the API key as the user name and an empty password.")
        return user
    raise _refused("The Authorization header is neither Bearer nor Basic.")


class Authenticator:
    """Checks a request's key (or its session's key) against the static keys and the stored ones."""

    def __init__(self, keys: ApiKeys | None, static_keys: Sequence[str], sessions: Sessions | None = None) -> None:
        self.keys = keys
        self._static = [hash_secret(k) for k in static_keys if k]
        self.sessions = sessions if sessions is not None else Sessions()

    @property
    def configured(self) -> bool:
        """Whether any key can be valid (static keys given, or a key store)."""
        return bool(self._static) or self.keys is not None

    async def identify(self, secret: str) -> str | None:
        """Who a key is (``"static key"``, or a stored key's name and prefix), or ``None`` if not valid."""
        digest = hash_secret(secret)
        matched = False
        for known in self._static:  # every one compared: the time does not tell which matched
            matched |= hmac.compare_digest(digest, known)
        if matched:
            return "static key"
        if self.keys is not None:
            info = await self.keys.verify(secret)
            if info is not None:
                return f"{info.name} ({info.prefix}…)"
        return None

    async def session_of(self, request: Request) -> Session | None:
        """The request's live session whose key is still valid, or ``None`` (an invalid one is ended)."""
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return None
        if await self.identify(session.secret) is None:
            self.sessions.end(session.id)
            return None
        return session

    async def check(self, request: Request) -> None:
        """Raise ``StepworkError`` (``unauthorized``) unless the request carries a valid key, or a valid
        session cookie (and, to change anything, the session's CSRF token)."""
        header = request.headers.get("authorization")
        if not header and COOKIE in request.cookies:
            session = await self.session_of(request)
            if session is None:
                raise StepworkError(_UNAUTHORIZED, "The session has ended (logged out, expired, or its key was "
                                                   "revoked); log in again at /app/login.")
            if request.method not in _SAFE_METHODS and not session.csrf_matches(request.headers.get(CSRF_HEADER)):
                raise StepworkError(_UNAUTHORIZED, "This request needs the session's CSRF token in the "
                                                   "X-CSRF-Token header (the page's csrf-token meta tag).")
            return
        secret = credentials_of(header)
        if await self.identify(secret) is None:
            raise _refused("The API key is not valid (unknown or revoked).")
