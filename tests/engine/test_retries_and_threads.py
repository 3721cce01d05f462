"""Immediate retries, retry_interval in the implicit in-memory engine, and thread steps."""

from __future__ import annotations

import asyncio
import threading

import pytest

from stepwork import create_step, create_workflow
from tests.engine._util import SUCCEEDED, states, step_records


async def test_immediate_retries_succeed_within_one_run(wf_name):
    """max_retries=2 without interval: attempts 1..3 happen in the same run, the last one succeeds."""
    attempts = []

    def flaky(inp, ctx):
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError("flaky")
        return "ok"

    step = create_step({"name": "flaky", "max_retries": 2}, flaky)
    result = await create_workflow(wf_name, lambda inp: step()).run()
    assert attempts == [1, 2, 3]
    assert result.result == "ok"
    assert result.errors == []
    assert states(result) == {"flaky": SUCCEEDED}
    assert (step_records(result)["flaky"]["attempts"], step_records(result)["flaky"]["failures"]) == (3, 2)


async def test_retry_interval_is_waited_between_attempts(wf_name):
    """retry_interval=0.02 (plain and coroutine steps): each next attempt starts at least 0.02 s later."""
    loop = asyncio.get_running_loop()
    times: dict[str, list[float]] = {"plain": [], "coro": []}

    def plain(inp, ctx):
        times["plain"].append(loop.time())
        if ctx.attempt < 3:
            raise RuntimeError("again")
        return "p"

    async def coro(inp, ctx):
        times["coro"].append(loop.time())
        if ctx.attempt < 3:
            raise RuntimeError("again")
        return "c"

    p = create_step({"name": "plain", "max_retries": 2, "retry_interval": 0.02}, plain)
    c = create_step({"name": "coro", "max_retries": 2, "retry_interval": 0.02}, coro)
    result = await create_workflow(wf_name, lambda inp: (p(), c())).run()
    assert result.transaction.state == "done"
    assert result.acknowledgement.has_finished is True
    for name, stamps in times.items():
        assert len(stamps) == 3, name
        gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        assert all(g >= 0.019 for g in gaps), (name, gaps)


async def test_retry_interval_exhausted_fails_permanently(wf_name):
    """With retry_interval, failing every attempt still ends permanent after max_retries + 1 attempts."""
    attempts = []

    def always(inp, ctx):
        attempts.append(ctx.attempt)
        raise RuntimeError(f"no {ctx.attempt}")

    step = create_step({"name": "always", "max_retries": 1, "retry_interval": 0.01}, always)
    result = await create_workflow(wf_name, lambda inp: step()).run(throw_on_error=False)
    assert attempts == [1, 2]
    assert result.transaction.state == "reverted"
    assert [e.error["message"] for e in result.errors] == ["no 2"]


async def test_thread_step_runs_off_the_event_loop_thread(wf_name):
    """thread=True runs a plain invoke in a worker thread; a plain step without it runs on the loop thread."""
    loop_thread = threading.get_ident()
    seen = {}

    def threaded(inp, ctx):
        seen["threaded"] = threading.get_ident()
        return inp + 1

    def inline(inp, ctx):
        seen["inline"] = threading.get_ident()
        return inp * 10

    t = create_step({"name": "threaded", "thread": True}, threaded)
    i = create_step("inline", inline)
    result = await create_workflow(wf_name, lambda inp: i(t(inp))).run(1)
    assert result.result == 20
    assert seen["inline"] == loop_thread
    assert seen["threaded"] != loop_thread


async def test_thread_step_failure_is_retried_and_compensated(wf_name):
    """A failing thread step is retried per max_retries, then compensated like any other step."""
    attempts, compensated = [], []

    def threaded(inp, ctx):
        attempts.append((ctx.attempt, threading.get_ident()))
        raise RuntimeError("thread failed")

    step = create_step({"name": "threaded", "thread": True, "max_retries": 1}, threaded,
                       lambda ci: compensated.append(ci))
    result = await create_workflow(wf_name, lambda inp: step()).run(throw_on_error=False)
    assert [a for a, _ in attempts] == [1, 2]
    assert all(ident != threading.get_ident() for _, ident in attempts)
    assert compensated == [None]
    assert result.transaction.state == "reverted"


@pytest.mark.parametrize("with_events", [False, True], ids=["no-events", "events"])
async def test_recorded_error_is_the_last_attempts_own(wf_name, with_events):
    """After retries the recorded error is the last attempt's, not chained to an earlier attempt's error."""
    def always(inp, ctx):
        raise ValueError(f"attempt {ctx.attempt}")

    def compensate(ci, ctx):
        raise OSError(f"undo attempt {ctx.attempt}")

    a = create_step({"name": "a", "max_retries": 2}, lambda: "A", compensate)
    b = create_step({"name": "b", "max_retries": 2}, always)
    events = {"on_begin": lambda e: None} if with_events else None
    result = await create_workflow(wf_name, lambda inp: (a(), b())).run(throw_on_error=False, events=events)
    [invoke_error] = result.errors
    assert invoke_error.error["message"] == "attempt 3"
    assert invoke_error.exception.__context__ is None
    assert "attempt 1" not in invoke_error.error["stack"]
    compensate_error = result.transaction.context["errors"][1]
    assert compensate_error["error"]["message"] == "undo attempt 3"
    assert "undo attempt 1" not in compensate_error["error"]["stack"]
