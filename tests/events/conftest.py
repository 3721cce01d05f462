"""Fixtures of the event tests: Redis buses under a key prefix of their own (so runs and tests do not
see each other's streams), a private ``redis-server`` that a test can restart, and ``eventually``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwork.events import RedisEventBus

REDIS_URL = os.environ.get("STEPWORK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def eventually(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll ``check`` (plain or async) until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {timeout}s")
        await asyncio.sleep(interval)


@pytest.fixture
def prefix() -> str:
    """A Redis key prefix unique to this test."""
    return f"stepwork-test-{os.getpid()}-{secrets.token_hex(4)}"


async def drop_keys(url: str, prefix: str) -> None:
    """Delete every key under ``prefix``."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_buses(prefix: str) -> AsyncIterator[Callable[..., RedisEventBus]]:
    """``make(**options)``: Redis buses on the shared server under this test's prefix; stopped and
    their keys deleted at the end."""
    made: list[RedisEventBus] = []

    def make(url: str = REDIS_URL, **options: Any) -> RedisEventBus:
        options.setdefault("retry_delay", 0.01)
        options.setdefault("block", 0.1)
        bus = RedisEventBus(url, prefix=prefix, **options)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        with contextlib.suppress(Exception):
            await bus.stop(grace=1.0)
    await drop_keys(REDIS_URL, prefix)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` of this test's own, appending every write to its file (``appendonly``)
    so that what it held survives a restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
            if time.monotonic() > deadline:
                raise AssertionError("the private redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): the append-only file is flushed."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private ``redis-server`` on a free port, stopped at the end."""
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.process.kill()
            server.process.wait(10)
