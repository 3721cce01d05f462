"""Server-side sessions of the admin web page: a random id in a cookie, the rest in this process.

Logging in with an API key makes a :class:`Session`: a 256-bit random id (the cookie's value, the
only thing the browser holds), the key itself (kept in this process's memory only, so every request
re-verifies it and a revoked key ends its sessions), a label of who it is, and a CSRF token (256
random bits, put in the page's ``<meta name="csrf-token">`` and required on every state-changing
request). A session ends at logout, after ``idle`` seconds unused (1 hour) or ``lifetime`` seconds
after the login (12 hours), and when the server stops. Sessions of one server are not seen by
another: behind several replicas, route a browser to one replica (or log in on each).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["COOKIE", "CSRF_HEADER", "Session", "Sessions"]

COOKIE = "stepwork_session"
CSRF_HEADER = "x-csrf-token"


@dataclass
class Session:
    """One logged-in browser."""

    id: str
    secret: str  # the API key it logged in with (memory only, never sent back to the browser)
    who: str
    csrf: str
    created: float
    last_used: float

    def csrf_matches(self, token: str | None) -> bool:
        """Whether ``token`` is this session's CSRF token (compared in constant time)."""
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())


class Sessions:
    """The sessions of one server, by id, with their expiry."""

    def __init__(self, *, idle: float = 3600.0, lifetime: float = 12 * 3600.0, max_sessions: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = float(idle)
        self.lifetime = float(lifetime)
        self.max_sessions = max_sessions
        self._clock = clock
        self._by_id: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def create(self, secret: str, who: str) -> Session:
        """A new session for a verified key (the oldest session goes when there are ``max_sessions``)."""
        self._sweep()
        while len(self._by_id) >= self.max_sessions:
            self._by_id.pop(next(iter(self._by_id)))
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), secret, who, secrets.token_urlsafe(32), now, now)
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id (its idle time restarts), or ``None``."""
        if not session_id or len(session_id) > 128:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_used > self.idle or now - session.created > self.lifetime:
            self._by_id.pop(session_id, None)
            return None
        session.last_used = now
        return session

    def end(self, session_id: str | None) -> None:
        """Forget a session (logout); an unknown id is ignored."""
        if session_id:
            self._by_id.pop(session_id, None)

    def _sweep(self) -> None:
        now = self._clock()
        for sid, s in list(self._by_id.items()):
            if now - s.last_used > self.idle or now - s.created > self.lifetime:
                del self._by_id[sid]
