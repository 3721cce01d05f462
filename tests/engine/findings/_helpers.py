"""Small helpers shared by the findings' regression tests (public API only)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

SQLITE_MEMORY = "sqlite://"
NO_SHARING = ("an in-memory SQLite database is private to one engine: two engines cannot share it "
              "(the sqlite-file and postgres runs cover this test)")


def skip_if_private(database_url: str) -> None:
    """Skip a test that needs two engines on one database on the in-memory SQLite backend."""
    if database_url == SQLITE_MEMORY:
        pytest.skip(NO_SHARING)


async def advance(clock: Any, seconds: float) -> None:
    """Move a fake clock (the conftest one advances synchronously, stepwork.testing's is awaited)."""
    moved = clock.advance(seconds)
    if inspect.isawaitable(moved):
        await moved


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 1.5) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds of real time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
