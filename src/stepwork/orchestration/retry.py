"""How long a step waits before its next attempt (docs/steps.md, step options: ``retry_interval``, ``retry_backoff``,
``retry_max_interval``, ``retry_jitter``).

Pure arithmetic: no clock, no I/O, no asyncio. Randomness comes from the caller's ``random``, so a
test or a durable replay gets the same wait from the same draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from stepwork.orchestration.definition import StepOptions

__all__ = ["MAX_RETRY_DELAY", "retry_delay"]

MAX_RETRY_DELAY: Final[float] = 100 * 365 * 86400.0
"""The longest wait exponential growth alone can reach (100 years, in seconds) when the step sets no
``retry_max_interval``: it keeps ``now + wait`` a finite time every store can hold (PostgreSQL
``timestamptz``, ``datetime``). It never shortens a ``retry_interval`` or ``retry_max_interval``
the step sets itself."""


def retry_delay(options: StepOptions, failures: int, random: Callable[[], float]) -> float:
    """The wait, in seconds, before the next attempt of a step that has failed ``failures`` times.

    ``wait = retry_interval * retry_backoff ** (failures - 1)``, capped at ``retry_max_interval``
    (or, without one, at :data:`MAX_RETRY_DELAY` or ``retry_interval`` if that is longer). The cap
    applies to every wait, the first one included. With ``retry_jitter = j > 0`` the wait is then
    drawn uniformly from ``[wait * (1 - j), wait]``: ``wait * (1 - j * (1 - random()))``, so
    ``random() == 0`` gives the lower bound and ``random() == 1`` the full wait.

    With the defaults (``retry_backoff = 1``, no cap, no jitter) this is ``retry_interval`` for every
    attempt: Medusa's fixed interval. A ``retry_interval`` of ``None`` or ``0`` means no wait:
    ``0.0``.

    ``random`` is called exactly once when jitter applies (``retry_jitter > 0`` and a wait > 0) and
    never otherwise; it must return a number in ``[0, 1]`` (``random.random`` does). A durable
    engine stores the value it drew (or the resulting due time) so a replay waits the same.

    The same rule serves compensation retries: the compensation of a step retries with that step's
    options, and ``failures`` counts the compensation's failed attempts (the count restarts when
    compensation begins), so its waits grow 1, 2, 4… from ``retry_interval`` again.

    Large ``failures`` are safe: the cap is checked in log space before any power is computed, so
    the result is finite and no ``OverflowError`` is raised.

    Raises ``ValueError`` if ``failures < 1`` or ``random()`` returns a value outside ``[0, 1]``.
    """
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
        raise ValueError(f"failures must be an integer >= 1 (failed attempts so far), got {failures!r}")
    interval = options.retry_interval
    if not interval:
        return 0.0
    wait = _capped_wait(float(interval), options.retry_backoff, options.retry_max_interval, failures - 1)
    jitter = options.retry_jitter
    if jitter and wait > 0:
        r = random()
        if not (isinstance(r, (int, float)) and 0 <= r <= 1):
            raise ValueError(f"random() must return a number in [0, 1], got {r!r}")
        wait *= 1 - jitter * (1 - r)
    return wait


def _capped_wait(interval: float, backoff: float, max_interval: float | None, exponent: int) -> float:
    """``min(interval * backoff ** exponent, cap)`` without overflowing for a huge ``exponent``."""
    cap = float(max_interval) if max_interval is not None else max(MAX_RETRY_DELAY, interval)
    if interval >= cap:
        return cap
    if exponent == 0 or backoff == 1:
        return interval
    try:
        # interval * backoff ** exponent >= cap  <=>  exponent * log(backoff) >= log(cap / interval)
        if exponent * math.log(backoff) >= math.log(cap / interval):
            return cap
        grown = interval * float(backoff) ** exponent
    except OverflowError:  # an exponent too large for a float, or a power past float range
        return cap
    return min(grown, cap)
