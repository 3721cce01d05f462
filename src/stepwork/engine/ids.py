"""Fast ULID generation (Crockford base32 of 48-bit millisecond time + 80 random bits).

The 26 characters split exactly: the first 10 encode the time (2 zero bits + 48 bits), the last 16
the randomness, so the time part is cached per millisecond and the rest is 8 table look-ups.
"""

from __future__ import annotations

import os
import random
import time

__all__ = ["new_ulid"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # two characters per 10 bits
_rand = random.Random()  # seeded from os.urandom
os.register_at_fork(after_in_child=_rand.seed)

_last_ms = -1
_last_prefix = ""


def new_ulid() -> str:
    """A new ULID string (26 characters, sortable by creation time to the millisecond)."""
    global _last_ms, _last_prefix
    p = _PAIRS
    ms = time.time_ns() // 1_000_000
    if ms != _last_ms:
        _last_ms = ms
        _last_prefix = (p[(ms >> 40) & 1023] + p[(ms >> 30) & 1023] + p[(ms >> 20) & 1023]
                        + p[(ms >> 10) & 1023] + p[ms & 1023])
    r = _rand.getrandbits(80)
    return (_last_prefix + p[r >> 70] + p[(r >> 60) & 1023] + p[(r >> 50) & 1023] + p[(r >> 40) & 1023]
            + p[(r >> 30) & 1023] + p[(r >> 20) & 1023] + p[(r >> 10) & 1023] + p[r & 1023])
