"""Retry waits that grow (retry_backoff), are capped (retry_max_interval) and spread (retry_jitter),
in memory and stored; a stored wait is drawn once and kept, so another process waits the same."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from stepwork import StepContext, create_step, create_workflow
from stepwork.engine.engine import WorkflowEngine
from tests.conftest import FakeClock


def _failing(attempts: list[int], until: int) -> Any:
    def flaky(value: Any, ctx: StepContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < until:
            raise RuntimeError(f"attempt {ctx.attempt}")
        return "ok"
    return flaky


async def _advance(engine: WorkflowEngine, clock: Any, seconds: float) -> None:
    clock.advance(seconds)
    await engine.fire_due()


async def test_stored_waits_grow_by_the_backoff_and_stop_at_the_cap(engine: WorkflowEngine, wf_name: str,
                                                                    clock: Any) -> None:
    attempts: list[int] = []
    s = create_step({"name": "flaky", "max_retries": 4, "retry_interval": 10, "retry_backoff": 2,
                     "retry_max_interval": 30}, _failing(attempts, 5))
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    first = await engine.run(wf, 1, transaction_id="tx")
    assert first.transaction.state == "invoking"
    # Waits: 10, 20, then 40 capped at 30, then 30.
    for wait, attempt in ((10, 2), (20, 3), (30, 4), (30, 5)):
        await _advance(engine, clock, wait - 0.5)
        assert attempts[-1] == attempt - 1, f"attempt {attempt} came before its wait of {wait} s"
        await _advance(engine, clock, 1)
        assert attempts[-1] == attempt
    execution = (await engine.list_workflow_executions({"workflow_id": wf_name}))[0]
    assert execution.state == "done"


async def test_stored_jittered_wait_is_drawn_once_and_kept_by_another_engine(
        database_url: str, wf_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if database_url == "sqlite://":
        pytest.skip("an in-memory SQLite database is private to one engine")
    attempts: list[int] = []
    s = create_step({"name": "flaky", "max_retries": 1, "retry_interval": 100, "retry_jitter": 0.5},
                    _failing(attempts, 2))
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    clock = FakeClock()
    monkeypatch.setattr(random, "random", lambda: 0.0)  # the lowest wait: 100 * (1 - 0.5) = 50 s
    async with WorkflowEngine(database_url, poll_interval=60, clock=clock) as a:
        await a.run(wf, 1, transaction_id="tx")
    assert attempts == [1]
    monkeypatch.setattr(random, "random", lambda: 1.0)  # a second draw would give 100 s
    async with WorkflowEngine(database_url, poll_interval=60, clock=clock) as b:
        await _advance(b, clock, 49)
        assert attempts == [1]
        await _advance(b, clock, 2)  # 51 s: due by the stored draw, not by a new one
        assert attempts == [1, 2]


async def test_in_memory_waits_grow_and_are_capped(wf_name: str) -> None:
    stamps: list[float] = []

    def flaky(value: Any, ctx: StepContext) -> str:
        stamps.append(time.monotonic())
        if ctx.attempt < 4:
            raise RuntimeError("again")
        return "ok"

    grow = create_step({"name": "grow", "max_retries": 3, "retry_interval": 0.01, "retry_backoff": 3}, flaky)
    wf = create_workflow(wf_name, lambda inp: grow(inp))
    assert (await wf.run(1)).result == "ok"
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    for gap, wait in zip(gaps, (0.01, 0.03, 0.09), strict=True):
        assert gap >= wait * 0.95, gaps

    stamps.clear()
    capped = create_step({"name": "capped", "max_retries": 3, "retry_interval": 0.01, "retry_backoff": 10,
                          "retry_max_interval": 0.02}, flaky)
    wf2 = create_workflow(wf_name + "-capped", lambda inp: capped(inp))
    assert (await wf2.run(1)).result == "ok"
    assert stamps[-1] - stamps[0] < 0.5  # uncapped, the waits would add up to 1.11 s


async def test_in_memory_jitter_draws_each_wait(wf_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stamps: list[float] = []

    def flaky(value: Any, ctx: StepContext) -> str:
        stamps.append(time.monotonic())
        if ctx.attempt < 2:
            raise RuntimeError("again")
        return "ok"

    monkeypatch.setattr(random, "random", lambda: 0.0)
    s = create_step({"name": "jit", "max_retries": 1, "retry_interval": 1.0, "retry_jitter": 0.95}, flaky)
    wf = create_workflow(wf_name, lambda inp: s(inp))
    assert (await wf.run(1)).result == "ok"
    assert 0.04 <= stamps[1] - stamps[0] < 0.5  # 1.0 * (1 - 0.95) = 0.05 s, not the full second
