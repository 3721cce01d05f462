"""Workflows for the crash tests, and a worker: `STEPWORK_CRASH_DIR=DIR python -m tests.engine.crash_app URL MODE`.

Each step appends "<step>:<action>:<idempotency key>" to DIR/log. A step that must "hang" writes
DIR/<step>.started and then waits until DIR/release exists, so the test can SIGKILL the worker at a
known point, and a recovering engine (with DIR/release present) lets it finish.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from stepwork import StepContext, create_step, create_workflow
from stepwork.engine.engine import WorkflowEngine


def _dir() -> Path:
    return Path(os.environ.get("STEPWORK_CRASH_DIR", "."))


def _log(ctx: StepContext, extra: str = "") -> None:
    with open(_dir() / "log", "a") as f:
        f.write(f"{ctx.step_name}:{ctx.action}:{ctx.idempotency_key}{extra}\n")
        f.flush()
        os.fsync(f.fileno())


async def _hang_here(ctx: StepContext) -> None:
    (_dir() / f"{ctx.step_name}.{ctx.action}.started").write_text("1")
    while not (_dir() / "release").exists():
        await asyncio.sleep(0.01)


def _plain(name: str) -> Any:
    def invoke(value: Any, ctx: StepContext) -> Any:
        _log(ctx)
        return f"{name}-out"

    def compensate(value: Any, ctx: StepContext) -> None:
        _log(ctx)
    return create_step(name, invoke, compensate)


async def _hanging_invoke(value: Any, ctx: StepContext) -> str:
    _log(ctx)
    await _hang_here(ctx)
    return "s3-out"


s1, s2, s4 = _plain("s1"), _plain("s2"), _plain("s4")
s3 = create_step("s3", _hanging_invoke, lambda v, ctx: _log(ctx))
mid_step = create_workflow({"name": "crash-mid-step", "retention_time": 600},
                           lambda inp: s4(s3(s2(s1(inp)))))


async def _hanging_compensation(value: Any, ctx: StepContext) -> None:
    _log(ctx)
    await _hang_here(ctx)


def _fail(value: Any, ctx: StepContext) -> None:
    _log(ctx)
    raise RuntimeError("c3 fails")


c1 = _plain("c1")
c2 = create_step("c2", lambda v, ctx: _log(ctx) or "c2-out", _hanging_compensation)
c3 = create_step("c3", _fail, lambda v, ctx: _log(ctx))
mid_compensation = create_workflow({"name": "crash-mid-compensation", "retention_time": 600},
                                   lambda inp: c3(c2(c1(inp))))


def _fails_once(value: Any, ctx: StepContext) -> str:
    _log(ctx, f":attempt{ctx.attempt}")
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


r1 = create_step({"name": "r1", "max_retries": 1, "retry_interval": 1}, _fails_once)
retry_timer = create_workflow({"name": "crash-retry-timer", "retention_time": 600}, lambda inp: r1(inp))

f1, f2, f3 = _plain("f1"), _plain("f2"), _plain("f3")
fault_window = create_workflow({"name": "crash-fault-window", "retention_time": 600},
                               lambda inp: f3(f2(f1(inp))))

WORKFLOWS = {"fault-window": fault_window, "mid-step": mid_step, "mid-compensation": mid_compensation,
             "retry-timer": retry_timer}


async def _main(database_url: str, mode: str, transaction_id: str) -> None:
    async with WorkflowEngine(database_url, lease_ttl=0.5, poll_interval=0.05) as engine:
        await engine.run(WORKFLOWS[mode], {"n": 1}, transaction_id=transaction_id, throw_on_error=False)
        (_dir() / "suspended").write_text("1")
        time.sleep(3600)  # hold here until killed (the test kills us)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2], sys.argv[3]))
