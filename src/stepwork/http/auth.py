"""Who may call the ``/admin`` routes: a request carries an API key in its ``Authorization`` header.

``Authorization: Bearer KEY``, or HTTP Basic with the key as the user name and an empty password
(what Medusa's secret API keys and ``@medusajs/js-sdk`` send). A key is valid when it is one of the
static keys the app was given (``STEPWORK_API_KEYS``) or a stored, unrevoked key
(:class:`~stepwork.http.keys.ApiKeys`). Keys are never read from the query string, never logged,
and compared by their SHA-256 in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence

from fastapi import Request

from stepwork.errors import StepworkError
from stepwork.http.keys import ApiKeys, hash_secret

__all__ = ["Authenticator", "credentials_of"]

_UNAUTHORIZED = StepworkError.Types.UNAUTHORIZED


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
    """Checks a request's key against the static keys and the stored ones."""

    def __init__(self, keys: ApiKeys | None, static_keys: Sequence[str]) -> None:
        self.keys = keys
        self._static = [hash_secret(k) for k in static_keys if k]

    @property
    def configured(self) -> bool:
        """Whether any key can be valid (static keys given, or a key store)."""
        return bool(self._static) or self.keys is not None

    async def check(self, request: Request) -> None:
        """Raise ``StepworkError`` (``unauthorized``) unless the request carries a valid key."""
        secret = credentials_of(request.headers.get("authorization"))
        digest = hash_secret(secret)
        matched = False
        for known in self._static:  # every one compared: the time does not tell which matched
            matched |= hmac.compare_digest(digest, known)
        if matched:
            return
        if self.keys is not None and await self.keys.verify(secret) is not None:
            return
        raise _refused("The API key is not valid (unknown or revoked).")
