"""Reusable fault injection for the engine's regression tests, all on loopback.

- :class:`TcpProxy`: an asyncio TCP proxy between an engine and the real PostgreSQL that a test
  can cut (open connections are reset, new ones refused) and restore.
- :class:`Workers`: starts worker subprocesses (``python -m MODULE ARGS``) from the repository root,
  signals them (SIGKILL, SIGSTOP, SIGCONT) and kills what is left at teardown.
- small waiting helpers (files, execution states) and the invocation log the worker apps write.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from stepwork import StepContext, WorkflowEngine

ROOT = Path(__file__).resolve().parents[3]
FINISHED = ("done", "reverted", "failed")
DIR_ENV = "STEPWORK_FAULTS_DIR"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_port(url: str, port: int, host: str = "127.0.0.1") -> str:
    """A PostgreSQL URL pointed at ``host:port`` instead (same user, database and options)."""
    return re.sub(r"^(postgres(?:ql)?(?:\+\w+)?://(?:[^@/]*@)?)[^/:]*(?::\d+)?", rf"\g<1>{host}:{port}", url)


# -- the invocation log -----------------------------------------------------------------------------

def fault_dir() -> Path:
    """Where the worker apps log invocations and leave marker files (``STEPWORK_FAULTS_DIR``)."""
    return Path(os.environ.get(DIR_ENV, "."))


def log_invocation(ctx: StepContext, extra: str = "") -> None:
    """Append ``step:action:idempotency key`` to ``fault_dir()/log``, durably (another process may
    be killed right after)."""
    with open(fault_dir() / "log", "a") as f:
        f.write(f"{ctx.step_name}:{ctx.action}:{ctx.idempotency_key}{extra}\n")
        f.flush()
        os.fsync(f.fileno())


def log_lines(directory: Path) -> list[str]:
    """The invocation log's lines (empty if nothing was logged)."""
    path = directory / "log"
    return path.read_text().splitlines() if path.exists() else []


def duplicates(lines: list[str]) -> list[str]:
    """Log lines that occur more than once (an invocation repeated with the same key and action)."""
    seen: dict[str, int] = {}
    for line in lines:
        seen[line] = seen.get(line, 0) + 1
    return sorted(line for line, n in seen.items() if n > 1)


# -- waiting ----------------------------------------------------------------------------------------

async def wait_for_file(path: Path, timeout: float = 20.0) -> None:
    """Wait until ``path`` exists."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never appeared within {timeout}s")
        await asyncio.sleep(0.02)


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


async def states_of(engine: WorkflowEngine, workflow_id: str, transaction_id: str) -> list[str]:
    """The states of the stored executions of one transaction (oldest run first)."""
    rows = await engine.list_workflow_executions({"workflow_id": workflow_id, "transaction_id": transaction_id})
    return [str(r.state) for r in rows]


async def wait_for_end(engine: WorkflowEngine, workflow_id: str, transaction_id: str, timeout: float) -> list[str]:
    """Wait up to ``timeout`` seconds for the transaction's latest run to finish; return the states
    seen last (the caller asserts on them, so a timeout reads as e.g. ``['invoking']``)."""
    seen: list[str] = []

    async def finished() -> bool:
        nonlocal seen
        seen = await states_of(engine, workflow_id, transaction_id)
        return bool(seen) and seen[-1] in FINISHED
    await wait_until(finished, timeout)
    return seen


# -- a TCP proxy that can be cut --------------------------------------------------------------------

class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target``; :meth:`cut` makes the server "go away".

    ``cut()`` stops listening (new connections are refused) and resets every open connection;
    ``restore()`` listens again on the same port. ``async with TcpProxy(...) as proxy:``.
    """

    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5432, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0  # accepted so far

    @property
    def is_cut(self) -> bool:
        return self._server is None

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        return self

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if self._server is None:  # cut while connecting upstream
            writer.transport.abort()
            up_writer.transport.abort()
            return
        link = (writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._links.discard(link)
            for w in link:
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()  # one side ended: end the other (a reset, as a dead server gives)

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for link in list(self._links):
            for w in link:
                w.transport.abort()
        self._links.clear()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def restore(self) -> None:
        """Accept connections again (on the same port)."""
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()


# -- worker subprocesses ----------------------------------------------------------------------------

class Workers:
    """Worker subprocesses of one test: ``start(module, *args)`` runs ``python -m module args`` with
    ``STEPWORK_FAULTS_DIR`` set; all still running at teardown are continued and killed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, module: str, *args: str, faults: str = "", stdout: Any = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        environ = {**os.environ, DIR_ENV: str(self.directory), "STEPWORK_FAULTS": faults, **(env or {})}
        proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=environ, stdout=stdout)
        self.procs.append(proc)
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL and reap."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()

    @staticmethod
    def freeze(proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGSTOP)

    @staticmethod
    def thaw(proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGCONT)

    @staticmethod
    def is_stopped(proc: subprocess.Popen[bytes]) -> bool:
        """Whether the process is stopped (SIGSTOP), from its state in ``/proc`` (Linux)."""
        try:
            stat = Path(f"/proc/{proc.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(") ", 1)[1].startswith("T")

    @staticmethod
    async def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int:
        """The return code once it exits (polled without blocking the event loop)."""
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {proc.args!r} still running after {timeout}s")
            await asyncio.sleep(0.02)
        return int(proc.returncode)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)
                    proc.send_signal(signal.SIGKILL)
            proc.wait()
