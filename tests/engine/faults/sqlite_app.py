"""Processes sharing one SQLite file while one of them is frozen holding its write lock.

``STEPWORK_FAULTS_DIR=DIR python -m tests.engine.faults.sqlite_app run URL WORKER COUNT``: an engine
(the default lease, 30 s; timers and recovery polled every 100 ms) that runs COUNT executions of
``faults-frozen`` concurrently (transaction ids ``wWORKER-i``) once DIR/go exists, writes
DIR/result-WORKER.json (``{"states": [...], "errors": [...]}``) when they have all returned, and
stays up until DIR/stop exists (so that it recovers what needs recovering).

``faults-frozen``: ``a``, ``b`` (waits until DIR/locked exists, i.e. until the database is locked),
``c`` (fails for odd inputs: then ``c``, ``b`` and ``a`` are compensated). Every invocation is logged
to DIR/log.

``... sqlite_app lock PATH``: opens the SQLite file, takes its write lock (``BEGIN IMMEDIATE``),
writes DIR/locked and stops itself (SIGSTOP); once continued it rolls back and exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from typing import Any

from stepwork import StepContext, WorkflowEngine, create_step, create_workflow
from tests.engine.faults.harness import fault_dir, log_invocation

FROZEN = "faults-frozen"


def _a(value: Any, ctx: StepContext) -> Any:
    log_invocation(ctx)
    return value


async def _b(value: Any, ctx: StepContext) -> Any:
    log_invocation(ctx)
    while not (fault_dir() / "locked").exists():
        await asyncio.sleep(0.01)
    return value


def _c(value: Any, ctx: StepContext) -> Any:
    log_invocation(ctx)
    if value["n"] % 2:
        raise RuntimeError("c fails for odd inputs")
    return value


a = create_step("a", _a, lambda v, ctx: log_invocation(ctx))
b = create_step("b", _b, lambda v, ctx: log_invocation(ctx))
c = create_step("c", _c, lambda v, ctx: log_invocation(ctx))
frozen = create_workflow({"name": FROZEN, "retention_time": 600}, lambda inp: c(b(a(inp))))


async def _run(url: str, worker: str, count: int) -> None:
    directory = fault_dir()
    async with WorkflowEngine(url, poll_interval=0.1) as engine:  # the default lease (30 s)
        (directory / f"ready-{worker}").write_text("1")
        while not (directory / "go").exists():
            await asyncio.sleep(0.01)
        outcomes = await asyncio.gather(
            *[engine.run(frozen, {"n": i}, transaction_id=f"w{worker}-{i}", throw_on_error=False)
              for i in range(count)], return_exceptions=True)
        result = {"states": [o.transaction.state.value for o in outcomes if not isinstance(o, BaseException)],
                  "errors": [repr(o) for o in outcomes if isinstance(o, BaseException)]}
        (directory / f"result-{worker}.json").write_text(json.dumps(result))
        while not (directory / "stop").exists():
            await asyncio.sleep(0.05)


def _lock(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")  # the engines write now and then: wait for a turn
    conn.execute("BEGIN IMMEDIATE")
    (fault_dir() / "locked").write_text("1")
    os.kill(os.getpid(), signal.SIGSTOP)
    conn.execute("ROLLBACK")
    conn.close()


if __name__ == "__main__":
    if sys.argv[1] == "lock":
        _lock(sys.argv[2])
    else:
        asyncio.run(_run(sys.argv[2], sys.argv[3], int(sys.argv[4])))
