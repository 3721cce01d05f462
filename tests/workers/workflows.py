"""The harness workflows (imported by the worker program only; see :mod:`tests.workers.journal`).

Every step function appends ``start`` to the process's journal when it begins and ``return`` or
``raise`` when it ends, and returns ``{"pid", "attempt"}``: the stored output then says which
invocation's result was committed. Step durations are spread over ``[lo, hi]`` seconds by a hash of
the transaction id and step (the same in every process), times ``SCALE`` (the chaos soak runs them
short).

- ``harness-slow``: five steps of 0.2–0.5 s, so that a kill lands in the middle of a run;
- ``harness-fail``: two steps, then one that fails for good: both are compensated (0.2 s each);
- ``harness-retry``: the middle step fails twice, with ``retry_interval`` (a durable timer) between
  attempts;
- ``harness-async``: the middle step is async: it is completed by ``set_step_success`` from another
  worker process, found through the journal;
- ``harness-tick``: one short step on a ``schedule`` interval (:func:`register_tick`, registered in
  every worker).
"""

from __future__ import annotations

import asyncio
import os
import zlib
from typing import Any

from stepwork import StepContext, create_step, create_workflow
from tests.workers.journal import TICK_WORKFLOW, Journal

__all__ = ["JOURNAL", "SCALE", "register_tick"]

JOURNAL: Journal | None = None  # set by the worker program
SCALE = 1.0
RETRY_INTERVAL = 0.5


def _note(event: str, ctx: StepContext, **extra: Any) -> None:
    assert JOURNAL is not None, "the worker program sets workflows.JOURNAL"
    JOURNAL.write(event, wf=ctx.workflow_id, tid=ctx.transaction_id, step=ctx.step_name, action=ctx.action,
                  attempt=ctx.attempt, key=ctx.idempotency_key, **extra)


def _duration(ctx: StepContext, lo: float, hi: float) -> float:
    frac = zlib.crc32(f"{ctx.transaction_id}:{ctx.step_name}:{ctx.action}".encode()) / 2**32
    return (lo + (hi - lo) * frac) * SCALE


def _journaled(lo: float, hi: float, *, fail_attempts: int = 0, fail_always: bool = False) -> Any:
    """A function that journals its call, sleeps, and fails as told (attempts ``<= fail_attempts``)."""
    async def call(value: Any, ctx: StepContext) -> dict[str, Any]:
        _note("start", ctx)
        try:
            await asyncio.sleep(_duration(ctx, lo, hi))
            if fail_always:
                raise RuntimeError(f"{ctx.step_name} fails for good")
            if ctx.attempt <= fail_attempts:
                raise ConnectionError(f"{ctx.step_name} attempt {ctx.attempt} fails")
        except Exception as exc:
            _note("raise", ctx, error=str(exc))
            raise
        _note("return", ctx)
        return {"pid": os.getpid(), "attempt": ctx.attempt}
    return call


def _step(name: str, lo: float, hi: float, **options: Any) -> Any:
    fail_attempts = options.pop("fail_attempts", 0)
    fail_always = options.pop("fail_always", False)
    config = {"name": name, **options} if options else name
    return create_step(config, _journaled(lo, hi, fail_attempts=fail_attempts, fail_always=fail_always),
                       _journaled(0.2, 0.2))


_slow = [_step(f"slow-{i}", 0.2, 0.5) for i in range(1, 6)]


def _compose_slow(inp: Any) -> Any:
    value = inp
    for step in _slow:
        value = step(value)
    return value


slow_flow = create_workflow({"name": "harness-slow", "retention_time": 3600}, _compose_slow)

_fail1, _fail2 = _step("fail-1", 0.2, 0.3), _step("fail-2", 0.2, 0.3)
_fail3 = _step("fail-3", 0.2, 0.3, fail_always=True)
fail_flow = create_workflow({"name": "harness-fail", "retention_time": 3600},
                            lambda inp: _fail3(_fail2(_fail1(inp))))

_retry1, _retry3 = _step("retry-1", 0.1, 0.2), _step("retry-3", 0.1, 0.2)
_retry2 = _step("retry-2", 0.1, 0.2, max_retries=2, retry_interval=RETRY_INTERVAL, fail_attempts=2)
retry_flow = create_workflow({"name": "harness-retry", "retention_time": 3600},
                             lambda inp: _retry3(_retry2(_retry1(inp))))


async def _ask(value: Any, ctx: StepContext) -> None:
    """The async step's invoke: journal the request (another worker reads the key and answers)."""
    _note("start", ctx)
    await asyncio.sleep(_duration(ctx, 0.05, 0.1))
    _note("return", ctx)


_async1, _async3 = _step("async-1", 0.1, 0.2), _step("async-3", 0.1, 0.2)
_async2 = create_step({"name": "async-2", "async": True}, _ask, _journaled(0.2, 0.2))
async_flow = create_workflow({"name": "harness-async", "retention_time": 3600},
                             lambda inp: _async3(_async2(_async1(inp))))


def register_tick(interval: float, count: int) -> Any:
    """The scheduled workflow: every ``interval`` seconds, ``count`` ticks in all."""
    tick = _step("tick", 0.02, 0.05)
    return create_workflow({"name": TICK_WORKFLOW, "retention_time": 3600,
                            "schedule": {"interval": interval, "number_of_executions": count}},
                           lambda inp: tick(inp))
