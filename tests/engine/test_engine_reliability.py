"""Reliability of the durable engine: the cases of reference/reliability.md §2 that pin races,
duplicates, failing compensations, timeouts, unstorable values and retention, on every backend.

Each test names the case it pins (R08, R09, ...). Tests that need two engines on one database use
``open_engine`` (an in-memory SQLite database is private to one engine, so that backend shares a
file instead). Time moves only by the FakeClock; conditions are polled with a real-time deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from stepwork import (
    PermanentStepFailure,
    StepContext,
    StepworkError,
    WorkflowExecution,
    WorkflowResult,
    create_step,
    create_workflow,
    parallelize,
)
from stepwork.engine.engine import WorkflowEngine
from stepwork.storage.base import ExecutionKey

ROOT = Path(__file__).resolve().parents[2]
OpenEngine = Callable[..., Awaitable[WorkflowEngine]]


# -- helpers ----------------------------------------------------------------------------------------


async def eventually(check: Callable[[], Any], timeout: float = 3.0) -> None:
    """Poll ``check`` (plain or coroutine function) until it holds; fail after ``timeout`` s of real time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        ok = check()
        if inspect.isawaitable(ok):
            ok = await ok
        if ok:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def only_row(engine: WorkflowEngine, workflow_id: str) -> WorkflowExecution:
    """The one stored execution of ``workflow_id`` (fails if there are none or several)."""
    rows = await engine.list_workflow_executions({"workflow_id": workflow_id})
    assert len(rows) == 1, f"expected one execution of {workflow_id}, found {[r.state for r in rows]}"
    return rows[0]


async def state_of(engine: WorkflowEngine, workflow_id: str) -> str | None:
    rows = await engine.list_workflow_executions({"workflow_id": workflow_id})
    return rows[0].state if rows else None


def steps_of(execution: WorkflowExecution) -> dict[str, dict[str, Any]]:
    """The stored step records keyed by step name (``_root`` left out)."""
    assert execution.execution is not None
    return {rid.rsplit(".", 1)[-1]: rec for rid, rec in execution.execution["steps"].items() if rid != "_root"}


def key_of(execution: WorkflowExecution) -> ExecutionKey:
    return ExecutionKey(execution.workflow_id, execution.transaction_id, execution.run_id)


def split(outcomes: list[Any]) -> tuple[list[WorkflowResult[Any]], list[BaseException]]:
    """``asyncio.gather(..., return_exceptions=True)`` outcomes as (results, exceptions)."""
    return ([o for o in outcomes if not isinstance(o, BaseException)],
            [o for o in outcomes if isinstance(o, BaseException)])


@pytest.fixture
def shared_url(database_url: str, tmp_path: Path) -> str:
    """The backend's URL, with a file instead of a private in-memory SQLite database."""
    return f"sqlite:///{tmp_path / 'shared.db'}" if database_url == "sqlite://" else database_url


@pytest.fixture
async def open_engine(shared_url: str, clock: Any) -> AsyncIterator[OpenEngine]:
    """Start engines on one shared database (the test's FakeClock, fast polling); all stop at the end."""
    async with contextlib.AsyncExitStack() as stack:
        async def start(**options: Any) -> WorkflowEngine:
            settings: dict[str, Any] = {"poll_interval": 0.02, "lease_ttl": 5.0, **options}
            return await stack.enter_async_context(WorkflowEngine(shared_url, clock=clock, **settings))
        yield start


# -- R08: one transaction id started many times at once ---------------------------------------------


async def test_r08_one_id_started_20_times_on_two_engines_runs_the_body_once(open_engine: OpenEngine,
                                                                             wf_name: str) -> None:
    """R08: twenty concurrent starts of one explicit transaction id, ten on each of two engines sharing
    a database (so both within one engine and across engines): the step body runs once, every other
    caller gets a ``conflict`` (or a handle on that same execution), and there is exactly one row."""
    a, b = await open_engine(), await open_engine()
    release = asyncio.Event()
    calls: list[int] = []

    async def slow(value: int) -> str:
        calls.append(value)
        await release.wait()
        return f"ran {value}"

    s = create_step("slow", slow)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    tasks = [asyncio.create_task((a if n % 2 else b).run(wf, n, transaction_id="dup")) for n in range(20)]
    await eventually(lambda: sum(t.done() for t in tasks) >= 19)  # every caller but the winner has answered
    release.set()
    results, errors = split(await asyncio.gather(*tasks, return_exceptions=True))

    assert len(calls) == 1
    assert all(isinstance(e, StepworkError) and e.type == "conflict" for e in errors), errors
    assert "Transaction already started for transaction_id: dup" in str(errors[0])
    assert len(results) >= 1
    assert {r.transaction.run_id for r in results} == {results[0].transaction.run_id}
    assert results[0].result == f"ran {calls[0]}"
    row = await only_row(a, wf_name)
    assert (row.state, row.run_id) == ("done", results[0].transaction.run_id)


async def test_r08_restarting_a_waiting_execution_20_times_resumes_the_same_one(open_engine: OpenEngine,
                                                                               wf_name: str) -> None:
    """R08: a suspended execution (waiting on an async step) started again twenty times at once from two
    engines: each caller resumes that same execution (same run id) or gets ``conflict``; nothing runs
    twice, no second row appears, and the execution still completes once."""
    a, b = await open_engine(), await open_engine()
    made: list[Any] = []
    invoked: list[Any] = []
    first = create_step("first", lambda value: made.append(value) or "made")
    wait = create_step({"name": "wait", "async": True}, lambda value: invoked.append(value))
    after = create_step("after", lambda value: {"got": value})
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: after(wait(first(inp))))
    started = await a.run(wf, 0, transaction_id="dup")
    assert started.transaction.state == "invoking"

    outcomes = await asyncio.gather(*[(a if n % 2 else b).run(wf, n, transaction_id="dup") for n in range(20)],
                                    return_exceptions=True)
    results, errors = split(outcomes)
    assert all(isinstance(e, StepworkError) and e.type == "conflict" for e in errors), errors
    assert {r.transaction.run_id for r in results} <= {started.transaction.run_id}
    assert all(r.transaction.state == "invoking" for r in results)
    assert made == [0]
    assert invoked == ["made"]
    assert (await only_row(b, wf_name)).state == "invoking"

    done = await b.set_step_success(f"{wf_name}:dup:wait:invoke", "ok")
    assert (done.transaction.state, done.result) == ("done", {"got": "ok"})
    assert (await only_row(a, wf_name)).run_id == started.transaction.run_id


# -- R09: one async step completed twice at once -----------------------------------------------------


async def test_r09_concurrent_completions_from_two_engines_apply_exactly_one(open_engine: OpenEngine,
                                                                             wf_name: str) -> None:
    """R09: the same waiting step completed at the same moment from two engines with different payloads:
    exactly one completion is applied, the next step sees only the winner's payload, and the other
    caller is refused promptly with ``not_allowed`` (the step is no longer waiting, SPEC §5)."""
    a, b = await open_engine(), await open_engine()
    seen: list[Any] = []
    wait = create_step({"name": "wait", "async": True}, lambda value: None)
    after = create_step("after", lambda value: seen.append(value) or {"got": value})
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: after(wait(inp)))
    await a.run(wf, 1, transaction_id="tx")
    key = f"{wf_name}:tx:wait:invoke"

    started = time.monotonic()
    results, errors = split(await asyncio.gather(a.set_step_success(key, "from-a"), b.set_step_success(key, "from-b"),
                                                 return_exceptions=True))
    elapsed = time.monotonic() - started

    assert len(results) == 1 and len(errors) == 1
    winner = results[0].result["got"]
    assert winner in ("from-a", "from-b")
    assert seen == [winner]
    assert isinstance(errors[0], StepworkError)
    assert errors[0].type == "not_allowed", repr(errors[0])
    assert elapsed < 2.0, f"the losing completion took {elapsed:.1f}s to be refused"
    row = await only_row(b, wf_name)
    assert row.state == "done"
    assert row.context is not None
    assert row.context["data"]["invoke"]["wait"] == winner
    assert row.context["data"]["invoke"]["after"] == {"got": winner}


async def test_r09_a_refused_duplicate_completion_leaves_the_execution_free(open_engine: OpenEngine,
                                                                            wf_name: str) -> None:
    """R09: after two engines race to complete one step, the winner's workflow waits on a second async
    step; the refused engine must not keep the execution for itself: completing the second step from
    the winning engine goes through at once."""
    a, b = await open_engine(), await open_engine()
    first = create_step({"name": "first", "async": True}, lambda value: None)
    second = create_step({"name": "second", "async": True}, lambda value: None)
    after = create_step("after", lambda pair: pair)
    wf = create_workflow({"name": wf_name, "retention_time": 60},
                         lambda inp: after([first(inp), second(inp)]))
    await a.run(wf, 1, transaction_id="tx")
    key = f"{wf_name}:tx:first:invoke"
    outcomes = await asyncio.gather(a.set_step_success(key, "A"), b.set_step_success(key, "B"),
                                    return_exceptions=True)
    results, errors = split(outcomes)
    assert len(results) == 1 and results[0].transaction.state == "invoking"
    assert isinstance(errors[0], StepworkError) and errors[0].type == "not_allowed"
    winner_engine = a if not isinstance(outcomes[0], BaseException) else b
    winner = "A" if winner_engine is a else "B"

    started = time.monotonic()
    done = await winner_engine.set_step_success(f"{wf_name}:tx:second:invoke", "2")
    assert time.monotonic() - started < 2.0
    assert (done.transaction.state, done.result) == ("done", [winner, "2"])


# -- R10: completing what isn't waiting --------------------------------------------------------------


def _waiting_workflow(name: str, **wait_options: Any) -> Any:
    first = create_step("first", lambda value: "made", lambda c: None)
    wait = create_step({"name": "wait", "async": True, **wait_options}, lambda value: None)
    after = create_step("after", lambda value: {"got": value})
    return create_workflow({"name": name, "retention_time": 60}, lambda inp: after(wait(first(inp))))


async def test_r10_completions_of_an_unknown_execution_or_step_are_not_found(engine: WorkflowEngine,
                                                                            wf_name: str) -> None:
    """R10: set_step_success / set_step_failure for an unknown transaction or an unknown step raise
    ``not_found``; no row is created and the waiting execution is left exactly as it was."""
    wf = _waiting_workflow(wf_name)
    await engine.run(wf, 1, transaction_id="tx")
    before = (await only_row(engine, wf_name)).to_dict()
    for key in (f"{wf_name}:nope:wait:invoke", f"{wf_name}:tx:missing:invoke",
                {"workflow_id": wf_name, "transaction_id": "nope", "step_id": "wait", "action": "invoke"}):
        for complete in (engine.set_step_success, engine.set_step_failure):
            with pytest.raises(StepworkError) as err:
                await complete(key, "x")
            assert err.value.type == "not_found", (key, err.value)
    assert (await only_row(engine, wf_name)).to_dict() == before
    done = await engine.set_step_success(f"{wf_name}:tx:wait:invoke", "ok")
    assert done.result == {"got": "ok"}


@pytest.mark.parametrize(("key", "expected_type"), [
    ("{wf}:tx:wait:compensate", "invalid_data"),       # wrong action for an invoking step
    ("{wf}:tx:wait", "invalid_data"),                  # malformed key
    ("{wf}:tx:first:invoke", "not_allowed"),           # a finished step
    ("{wf}:tx:after:invoke", "not_allowed"),           # a step not started yet
])
async def test_r10_completing_a_step_that_is_not_waiting_is_refused(engine: WorkflowEngine, wf_name: str, key: str,
                                                                    expected_type: str) -> None:
    """R10: a completion with a wrong action, a malformed key, or for a step that is not waiting is a
    typed error that changes nothing: the execution still waits, and completes normally afterwards."""
    wf = _waiting_workflow(wf_name)
    await engine.run(wf, 1, transaction_id="tx")
    before = await only_row(engine, wf_name)
    with pytest.raises(StepworkError) as err:
        await engine.set_step_success(key.format(wf=wf_name), "x")
    assert err.value.type == expected_type
    after = await only_row(engine, wf_name)
    assert (after.state, after.updated_at, after.context) == (before.state, before.updated_at, before.context)
    assert steps_of(after) == steps_of(before)
    done = await engine.set_step_success(f"{wf_name}:tx:wait:invoke", "ok")
    assert done.result == {"got": "ok"}


async def test_r10_completing_an_already_failed_step_is_refused(engine: WorkflowEngine, wf_name: str) -> None:
    """R10: an async step failed for good (its failure ignored, so the workflow goes on to a second
    async step) cannot be completed afterwards: both success and failure are ``not_allowed``, its
    record stays failed, and the execution keeps waiting on the second step."""
    first = create_step({"name": "first", "async": True, "continue_on_permanent_failure": True}, lambda v: None)
    second = create_step({"name": "second", "async": True}, lambda v: None)
    after = create_step("after", lambda pair: pair)
    wf = create_workflow({"name": wf_name, "retention_time": 60},
                         lambda inp: after([first(inp), second(inp)]))
    await engine.run(wf, 1, transaction_id="tx")
    failed = await engine.set_step_failure(f"{wf_name}:tx:first:invoke", "declined", force_permanent_failure=True)
    assert failed.transaction.state == "invoking"
    before = await only_row(engine, wf_name)
    assert steps_of(before)["first"]["invoke"] == {"state": "failed", "status": "permanent_failure"}

    with pytest.raises(StepworkError) as success:
        await engine.set_step_success(f"{wf_name}:tx:first:invoke", "late")
    with pytest.raises(StepworkError) as failure:
        await engine.set_step_failure(f"{wf_name}:tx:first:invoke", "again")
    assert (success.value.type, failure.value.type) == ("not_allowed", "not_allowed")
    after = await only_row(engine, wf_name)
    assert (after.state, after.updated_at, after.context) == (before.state, before.updated_at, before.context)
    assert steps_of(after) == steps_of(before)
    done = await engine.set_step_success(f"{wf_name}:tx:second:invoke", "2")
    assert (done.transaction.state, done.result) == ("done", [None, "2"])


async def _finish(engine: WorkflowEngine, wf_name: str, how: str) -> None:
    """Bring the waiting execution ``tx`` of ``_terminal_workflow`` to ``how``."""
    key = f"{wf_name}:tx:wait:invoke"
    if how == "done":
        await engine.set_step_success(key, "ok")
    else:
        await engine.set_step_failure(key, "declined", force_permanent_failure=True, throw_on_error=False)


def _terminal_workflow(name: str, how: str) -> Any:
    def undo(value: Any) -> None:
        if how == "failed":
            raise RuntimeError("cannot undo")

    first = create_step("first", lambda value: "made", undo)
    wait = create_step({"name": "wait", "async": True}, lambda value: None)
    return create_workflow({"name": name, "retention_time": 60}, lambda inp: wait(first(inp)))


@pytest.mark.parametrize("how", ["done", "reverted", "failed"])
async def test_r10_completions_of_a_finished_execution_never_change_it(engine: WorkflowEngine, wf_name: str,
                                                                       clock: Any, how: str) -> None:
    """R10: once an execution is ``done``, ``reverted`` or ``failed``, every completion of any of its
    steps (success or failure, invoke or compensate) is ``not_allowed`` and the stored execution is
    unchanged: same state, same ``updated_at``, same records."""
    wf = _terminal_workflow(wf_name, how)
    await engine.run(wf, 1, transaction_id="tx")
    await _finish(engine, wf_name, how)
    before = (await only_row(engine, wf_name)).to_dict()
    assert before["state"] == how
    clock.advance(5)  # a write now would move updated_at
    for step in ("wait", "first"):
        for action in ("invoke", "compensate"):
            key = f"{wf_name}:tx:{step}:{action}"
            for complete in (engine.set_step_success, engine.set_step_failure):
                with pytest.raises(StepworkError) as err:
                    await complete(key, "late")
                assert err.value.type == "not_allowed", (key, complete.__name__, err.value)
    assert (await only_row(engine, wf_name)).to_dict() == before


# -- R11: parallel completions -----------------------------------------------------------------------


def _five_parallel_async_steps(name: str, joins: list[Any]) -> Any:
    branches = [create_step({"name": f"branch-{k}", "async": True}, lambda value: None) for k in range(5)]
    join = create_step("join", lambda outputs: joins.append(outputs) or sorted(outputs))

    def compose(inp: Any) -> Any:
        outputs = parallelize(*[branch(inp) for branch in branches])
        return join(list(outputs))

    return create_workflow({"name": name, "retention_time": 60}, compose)


async def test_r11_five_parallel_async_steps_completed_at_once_join_once(engine: WorkflowEngine,
                                                                         wf_name: str) -> None:
    """R11: five parallel async steps completed concurrently (one gather of five set_step_success): no
    completion is lost, all five outputs are stored, the join step runs exactly once, final ``done``."""
    joins: list[Any] = []
    wf = _five_parallel_async_steps(wf_name, joins)
    started = await engine.run(wf, 1, transaction_id="tx")
    assert started.transaction.state == "invoking"

    results, errors = split(await asyncio.gather(
        *[engine.set_step_success(f"{wf_name}:tx:branch-{k}:invoke", f"out-{k}") for k in range(5)],
        return_exceptions=True))
    assert errors == []
    expected = [f"out-{k}" for k in range(5)]
    assert joins == [expected]
    assert sorted(r.transaction.state for r in results) == ["done"] + ["invoking"] * 4
    row = await only_row(engine, wf_name)
    assert row.state == "done"
    assert row.context is not None
    assert {k: v for k, v in row.context["data"]["invoke"].items() if k.startswith("branch-")} == {
        f"branch-{k}": f"out-{k}" for k in range(5)}
    assert row.context["data"]["invoke"]["join"] == expected


async def test_r11_parallel_async_steps_completed_from_two_engines_join_once(open_engine: OpenEngine,
                                                                             wf_name: str) -> None:
    """R11: the same five completions split across two engines sharing the database: no lost update,
    the join runs once, the execution ends ``done`` with all five outputs."""
    a, b = await open_engine(), await open_engine()
    joins: list[Any] = []
    wf = _five_parallel_async_steps(wf_name, joins)
    await a.run(wf, 1, transaction_id="tx")
    results, errors = split(await asyncio.gather(
        *[(a, b)[k % 2].set_step_success(f"{wf_name}:tx:branch-{k}:invoke", f"out-{k}") for k in range(5)],
        return_exceptions=True))
    assert errors == []
    assert joins == [[f"out-{k}" for k in range(5)]]
    row = await only_row(b, wf_name)
    assert row.state == "done"
    assert row.context is not None
    assert row.context["data"]["invoke"]["join"] == [f"out-{k}" for k in range(5)]


# -- R12: a retry timer applied once -----------------------------------------------------------------


async def test_r12_a_due_retry_timer_advances_the_attempt_exactly_once(open_engine: OpenEngine, wf_name: str,
                                                                       clock: Any) -> None:
    """R12: when a retry timer falls due, the timer loops of two engines (each fired twice, concurrently)
    and two resumptions by ``run`` with the same id all race for it: the step gets exactly one more
    attempt per due timer, and after the last allowed attempt nothing runs again.

    The engines poll rarely, so only the explicit calls of their timer loop body (``_tick``) fire timers.
    """
    a, b = await open_engine(poll_interval=3600), await open_engine(poll_interval=3600)
    attempts: list[int] = []

    def charge(value: Any, ctx: StepContext) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError(f"attempt {ctx.attempt} failed")

    s = create_step({"name": "charge", "max_retries": 3, "retry_interval": 10}, charge)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    first = await a.run(wf, 1, transaction_id="tx")
    assert first.transaction.state == "invoking"
    assert attempts == [1]

    for expected in ([1, 2], [1, 2, 3]):
        await asyncio.gather(a._tick(), b._tick(), a._tick(), b._tick())  # not due yet: nothing happens
        assert attempts == expected[:-1]
        clock.advance(10)
        outcomes = await asyncio.gather(a._tick(), b._tick(), a._tick(), b._tick(),
                                        a.run(wf, 1, transaction_id="tx", throw_on_error=False),
                                        b.run(wf, 1, transaction_id="tx", throw_on_error=False),
                                        return_exceptions=True)
        _, errors = split(outcomes)
        assert all(isinstance(e, StepworkError) and e.type == "conflict" for e in errors), errors
        assert attempts == expected
        row = await only_row(a, wf_name)
        assert (row.state, steps_of(row)["charge"]["attempts"]) == ("invoking", len(expected))

    clock.advance(10)
    await asyncio.gather(a._tick(), b._tick(), a._tick(), b._tick())
    assert attempts == [1, 2, 3, 4]
    row = await only_row(a, wf_name)
    assert row.state == "reverted"
    assert steps_of(row)["charge"]["attempts"] == 4
    clock.advance(100)
    await asyncio.gather(a._tick(), b._tick())
    assert attempts == [1, 2, 3, 4]


# -- R19: one SQLite file, four processes ------------------------------------------------------------


@pytest.mark.slow
async def test_r19_four_processes_share_one_sqlite_file_without_lock_errors(tmp_path: Path, wf_name: str) -> None:
    """R19: four worker processes, each with its own engine on one SQLite file, run 25 stored
    five-step workflows each, all at once, while this process lists executions in a loop: all 100
    finish ``done`` with the right result, and "database is locked" never surfaces (not as an error,
    not in the logs, not to the reader)."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs: list[subprocess.Popen[bytes]] = []
    outputs = [tmp_path / f"out-{k}" for k in range(4)]
    try:
        for k in range(4):
            with open(outputs[k], "wb") as out, open(tmp_path / f"err-{k}", "wb") as err:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "tests.engine.reliability_app", url, wf_name, str(k), "25",
                     str(tmp_path)], cwd=ROOT, env=env, stdout=out, stderr=err))
        async with WorkflowEngine(url, poll_interval=0.05) as reader:
            await eventually(lambda: all((tmp_path / f"ready-{k}").exists() for k in range(4))
                             or any(p.poll() is not None for p in procs), timeout=30)
            (tmp_path / "go").write_text("1")
            reads = 0
            reader_errors: list[str] = []
            deadline = asyncio.get_running_loop().time() + 60
            while any(p.poll() is None for p in procs):
                assert asyncio.get_running_loop().time() < deadline, "the workers did not finish in time"
                try:
                    await reader.list_and_count_workflow_executions({"workflow_id": wf_name}, take=20,
                                                                    order={"updated_at": "DESC"})
                    reads += 1
                except Exception as exc:  # what a reader sees is part of the test
                    reader_errors.append(repr(exc))
                await asyncio.sleep(0.005)
            rows = await reader.list_workflow_executions({"workflow_id": wf_name})
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()

    stderr = "".join((tmp_path / f"err-{k}").read_text() for k in range(4))
    assert [p.returncode for p in procs] == [0, 0, 0, 0], stderr
    reports = [json.loads(path.read_text()) for path in outputs]
    assert [r["errors"] for r in reports] == [[]] * 4
    assert [r["logged"] for r in reports] == [[]] * 4
    assert all(r["states"] == ["done"] * 25 for r in reports)
    assert all(r["results"] == [5 * n for n in range(25)] for r in reports)
    assert "locked" not in stderr
    assert reader_errors == []
    assert reads > 0, reads
    assert len(rows) == 100
    assert {r.state for r in rows} == {"done"}
    assert len({r.transaction_id for r in rows}) == 100


# -- R22: a compensation that always fails -----------------------------------------------------------


async def test_r22_a_compensation_failing_every_time_ends_failed_never_reverted(engine: WorkflowEngine,
                                                                                wf_name: str) -> None:
    """R22: step 3 fails; step 2's compensation raises on every attempt (max_retries=2): it is attempted
    3 times, step 1's compensation still runs afterwards, the execution ends ``failed`` (never
    ``reverted``, not even in an event), and the compensation error is stored in the context errors
    with handler_type ``compensate``."""
    log: list[Any] = []

    def undo_two(value: Any, ctx: StepContext) -> None:
        log.append(("undo-two", ctx.attempt))
        raise RuntimeError(f"cannot undo two (attempt {ctx.attempt})")

    def fail_three(value: Any) -> None:
        raise ValueError("three fails")

    one = create_step("one", lambda value: "ONE", lambda c: log.append(("undo-one", c)))
    two = create_step({"name": "two", "max_retries": 2}, lambda value: "TWO", undo_two)
    three = create_step("three", fail_three, lambda c: log.append(("undo-three", c)))
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: three(two(one(inp))))
    finished: list[Any] = []
    await engine.subscribe(wf_name, lambda e: finished.append(e.get("state")) if e["event_type"] == "on_finish"
                           else None)

    result = await engine.run(wf, 1, transaction_id="tx", throw_on_error=False)

    assert result.transaction.state == "failed"
    assert log == [("undo-three", None), ("undo-two", 1), ("undo-two", 2), ("undo-two", 3), ("undo-one", "ONE")]
    assert finished == ["failed"]
    assert [(e.action, e.handler_type) for e in result.errors] == [("three", "invoke")]
    with pytest.raises(ValueError, match="three fails"):
        await engine.run(wf, 1, transaction_id="tx-raising")
    row = await only_row_with(engine, wf_name, "tx")
    assert row.state == "failed"
    assert row.execution is not None and row.execution["state"] == "failed"
    assert row.context is not None
    errors = row.context["errors"]
    assert [(e["action"], e["handler_type"]) for e in errors] == [("three", "invoke"), ("two", "compensate")]
    assert errors[1]["error"]["name"] == "RuntimeError"
    assert errors[1]["error"]["message"] == "cannot undo two (attempt 3)"
    steps = steps_of(row)
    assert steps["two"]["compensate"] == {"state": "failed", "status": "permanent_failure"}
    assert steps["two"]["attempts"] == 3
    assert steps["one"]["compensate"] == {"state": "reverted", "status": "ok"}
    assert steps["three"]["compensate"] == {"state": "reverted", "status": "ok"}


async def only_row_with(engine: WorkflowEngine, workflow_id: str, transaction_id: str) -> WorkflowExecution:
    rows = await engine.list_workflow_executions({"workflow_id": workflow_id, "transaction_id": transaction_id})
    assert len(rows) == 1
    return rows[0]


# -- R25: a late answer after a step timeout ---------------------------------------------------------


async def test_r25_a_late_completion_after_a_step_timeout_is_refused(engine: WorkflowEngine, wf_name: str,
                                                                     clock: Any) -> None:
    """R25: an async step's timeout expires (FakeClock): the step is marked ``timeout`` and compensation
    starts (here it waits on an async compensation, so the execution is still ``compensating``). A late
    set_step_success for the timed-out step is refused and changes nothing; the execution ends
    ``reverted``, never ``done``, and the late payload is never recorded."""
    first = create_step({"name": "first", "compensate_async": True}, lambda value: "made", lambda c: None)
    wait = create_step({"name": "wait", "async": True, "timeout": 30}, lambda value: None)
    after = create_step("after", lambda value: value)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: after(wait(first(inp))))
    await engine.run(wf, 1, transaction_id="tx")
    clock.advance(29)
    await engine._tick()  # the timer loop's body, run once more now: the timeout is not due yet
    assert await state_of(engine, wf_name) == "invoking"
    clock.advance(2)
    await eventually(lambda: state_of_is(engine, wf_name, "compensating"))
    before = await only_row(engine, wf_name)
    steps = steps_of(before)
    assert steps["wait"]["invoke"] == {"state": "timeout", "status": "permanent_failure"}
    assert steps["first"]["compensate"] == {"state": "compensating", "status": "waiting_response"}

    with pytest.raises(StepworkError) as err:
        await engine.set_step_success(f"{wf_name}:tx:wait:invoke", "late")
    assert err.value.type == "not_allowed"
    late = await only_row(engine, wf_name)
    assert (late.state, late.updated_at, late.context) == (before.state, before.updated_at, before.context)
    assert steps_of(late) == steps

    final = await engine.set_step_success(f"{wf_name}:tx:first:compensate", "undone", throw_on_error=False)
    assert final.transaction.state == "reverted"
    row = await only_row(engine, wf_name)
    assert row.state == "reverted"
    assert steps_of(row)["wait"]["invoke"]["state"] == "timeout"
    assert steps_of(row)["after"]["invoke"]["state"] == "not_started"
    assert row.context is not None and "late" not in json.dumps(row.context["data"])
    with pytest.raises(StepworkError) as again:
        await engine.set_step_success(f"{wf_name}:tx:wait:invoke", "later still")
    assert again.value.type == "not_allowed"


async def state_of_is(engine: WorkflowEngine, workflow_id: str, state: str) -> bool:
    return await state_of(engine, workflow_id) == state


# -- R26: retries counted exactly; non-retryable errors ---------------------------------------------


class CardDeclined(Exception):
    """A retryable failure of the tests' payment step."""


class CardStolen(PermanentStepFailure):
    """A failure that must never be retried."""


async def test_r26_a_step_failing_every_time_gets_exactly_max_retries_plus_one_attempts(engine: WorkflowEngine,
                                                                                        wf_name: str) -> None:
    """R26: a step failing every time with max_retries=3 is attempted exactly 4 times; the run raises the
    original exception type (the last attempt's), and one error (not one per attempt) is recorded."""
    attempts: list[int] = []

    def charge(value: Any, ctx: StepContext) -> None:
        attempts.append(ctx.attempt)
        raise CardDeclined(f"declined on attempt {ctx.attempt}")

    s = create_step({"name": "charge", "max_retries": 3}, charge)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    with pytest.raises(CardDeclined, match="declined on attempt 4"):
        await engine.run(wf, 1, transaction_id="tx")
    assert attempts == [1, 2, 3, 4]
    row = await only_row(engine, wf_name)
    assert row.state == "reverted"
    assert (steps_of(row)["charge"]["attempts"], steps_of(row)["charge"]["failures"]) == (4, 4)
    assert row.context is not None
    assert [(e["action"], e["error"]["name"]) for e in row.context["errors"]] == [("charge", "CardDeclined")]


async def test_r26_durable_retries_stop_after_the_last_attempt_without_another_wait(engine: WorkflowEngine,
                                                                                    wf_name: str,
                                                                                    clock: Any) -> None:
    """R26: with retry_interval (durable timers) and max_retries=3: one attempt per elapsed interval,
    exactly 4 in all, and the execution is compensated right after the 4th failure: no timer, no
    further wait after the last attempt."""
    attempts: list[int] = []

    def charge(value: Any, ctx: StepContext) -> None:
        attempts.append(ctx.attempt)
        raise CardDeclined(f"declined on attempt {ctx.attempt}")

    undone: list[Any] = []
    s = create_step({"name": "charge", "max_retries": 3, "retry_interval": 5}, charge, lambda c: undone.append(c))
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    first = await engine.run(wf, 1, transaction_id="tx", throw_on_error=False)
    assert first.transaction.state == "invoking"
    for n in (2, 3, 4):
        clock.advance(5)
        await eventually(lambda n=n: len(attempts) == n)
    await eventually(lambda: state_of_is(engine, wf_name, "reverted"))  # the clock did not move again
    assert attempts == [1, 2, 3, 4]
    assert undone == [None]


async def test_r26_a_permanent_failure_is_not_retried_and_keeps_its_type(engine: WorkflowEngine,
                                                                         wf_name: str) -> None:
    """R26: a step raising a PermanentStepFailure (here a subclass) despite max_retries=3 fails on its
    first attempt, and run(throw_on_error=True) raises that original exception object and type."""
    attempts: list[int] = []
    raised: list[BaseException] = []

    def charge(value: Any, ctx: StepContext) -> None:
        attempts.append(ctx.attempt)
        error = CardStolen("card reported stolen")
        raised.append(error)
        raise error

    s = create_step({"name": "charge", "max_retries": 3}, charge)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    with pytest.raises(CardStolen) as err:
        await engine.run(wf, 1, transaction_id="tx")
    assert attempts == [1]
    assert err.value is raised[0]
    assert err.value.message == "card reported stolen"
    row = await only_row(engine, wf_name)
    assert row.state == "reverted"
    assert steps_of(row)["charge"]["invoke"] == {"state": "failed", "status": "permanent_failure"}


# -- R29: workflow timeout and cancel while a step runs ---------------------------------------------


def _hanging_workflow(name: str, log: list[Any], started: asyncio.Event, *, timeout: float | None) -> Any:
    async def hang(value: Any) -> str:
        started.set()
        try:
            await asyncio.Event().wait()  # never set: only a cancellation ends it
        finally:
            log.append("two: finally")
        return "TWO"  # pragma: no cover

    one = create_step("one", lambda value: "ONE", lambda c: log.append(("undo-one", c)))
    two = create_step("two", hang, lambda c: log.append(("undo-two", c)))
    three = create_step("three", lambda value: "THREE", lambda c: log.append(("undo-three", c)))
    options: dict[str, Any] = {"name": name, "retention_time": 60}
    if timeout is not None:
        options["timeout"] = timeout
    return create_workflow(options, lambda inp: three(two(one(inp))))


async def test_r29_a_workflow_timeout_cancels_the_running_step_and_compensates(engine: WorkflowEngine,
                                                                               wf_name: str) -> None:
    """R29: the workflow timeout (0.3 s) expires while a coroutine step runs: the step is cancelled (its
    ``finally`` runs), it is marked ``timeout``, the completed step is compensated, the next step never
    runs, and the execution reaches exactly one terminal state (``reverted``, one on_finish)."""
    log: list[Any] = []
    started = asyncio.Event()
    wf = _hanging_workflow(wf_name, log, started, timeout=0.3)
    finished: list[Any] = []
    result = await engine.run(wf, 1, transaction_id="tx", throw_on_error=False,
                              events={"on_finish": lambda e: finished.append(e["state"])})
    assert result.transaction.state == "reverted"
    assert log == ["two: finally", ("undo-two", None), ("undo-one", "ONE")]
    assert finished == ["reverted"]
    assert [e.error["name"] for e in result.errors] == ["TransactionTimeoutError"]
    row = await only_row(engine, wf_name)
    assert row.state == "reverted"
    steps = steps_of(row)
    assert steps["two"]["invoke"] == {"state": "timeout", "status": "permanent_failure"}
    assert steps["three"]["invoke"]["state"] == "not_started"
    assert row.execution is not None and row.execution["timedOutAt"] is not None


async def test_r29_cancel_racing_a_timing_out_run_gives_one_terminal_state(engine: WorkflowEngine,
                                                                           wf_name: str) -> None:
    """R29: cancel() issued while the step runs, racing the workflow timeout: the timeout wins (the run
    holds the execution), the cancel is refused with ``not_allowed``, each completed step is
    compensated exactly once, and there is one terminal state and one on_finish."""
    log: list[Any] = []
    started = asyncio.Event()
    wf = _hanging_workflow(wf_name, log, started, timeout=0.3)
    finished: list[Any] = []
    await engine.subscribe(wf_name, lambda e: finished.append(e.get("state")) if e["event_type"] == "on_finish"
                           else None)
    run = asyncio.create_task(engine.run(wf, 1, transaction_id="tx", throw_on_error=False))
    await started.wait()
    cancel = asyncio.create_task(engine.cancel(wf_name, "tx"))
    result = await run
    with pytest.raises(StepworkError) as err:
        await cancel
    assert err.value.type == "not_allowed"
    assert result.transaction.state == "reverted"
    assert log == ["two: finally", ("undo-two", None), ("undo-one", "ONE")]
    assert finished == ["reverted"]
    assert (await only_row(engine, wf_name)).state == "reverted"


async def test_r29_cancel_from_another_engine_racing_a_run_compensates_every_step(open_engine: OpenEngine,
                                                                                  wf_name: str) -> None:
    """R29: engine B cancels while engine A runs step two; A goes on to an async step three and
    suspends; B's cancel then takes the execution over. The cancel must act on the execution as it is
    then, not as B first read it: every step that ran (three, failed at once by the cancel, then two,
    then one) is compensated, newest first, and the execution ends ``reverted``."""
    a, b = await open_engine(), await open_engine()
    log: list[Any] = []
    started = asyncio.Event()
    gate = asyncio.Event()

    async def two_invoke(value: Any) -> str:
        started.set()
        await gate.wait()
        return "TWO"

    one = create_step("one", lambda value: "ONE", lambda c: log.append(("undo-one", c)))
    two = create_step("two", two_invoke, lambda c: log.append(("undo-two", c)))
    three = create_step({"name": "three", "async": True}, lambda value: None,
                        lambda c: log.append(("undo-three", c)))
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: three(two(one(inp))))
    run = asyncio.create_task(a.run(wf, 1, transaction_id="tx"))
    await started.wait()
    cancel = asyncio.create_task(b.cancel(wf_name, "tx"))
    await eventually(lambda: b.busy(wf_name, "tx"))
    await asyncio.sleep(0.05)  # opens the race window: B has read the execution and waits for A's lease
    gate.set()
    first = await run
    assert first.transaction.state == "invoking"
    cancelled = await cancel
    assert cancelled is not None and cancelled.transaction.state == "reverted"
    assert log == [("undo-three", None), ("undo-two", "TWO"), ("undo-one", "ONE")]
    row = await only_row(a, wf_name)
    assert row.state == "reverted"
    assert {name: rec["compensate"]["state"] for name, rec in steps_of(row).items()} == {
        "one": "reverted", "two": "reverted", "three": "reverted"}


# -- R30: outputs that cannot be stored --------------------------------------------------------------


def _unstorable(kind: str, handle: Any) -> Any:
    if kind == "lambda":
        return {"callback": lambda: 1}
    if kind == "open-file":
        return {"file": handle}
    circular: dict[str, Any] = {"name": "loop"}
    circular["self"] = circular
    return circular


@pytest.mark.parametrize("kind", ["lambda", "open-file", "circular"])
async def test_r30_an_unstorable_output_fails_its_step_with_retries_and_compensation(
        engine: WorkflowEngine, wf_name: str, tmp_path: Path, kind: str) -> None:
    """R30: a step returning a lambda, an open file or a dict containing itself fails with a StepworkError
    naming the step; its retries apply (max_retries=1: 2 attempts), the compensations run (the failing
    step's own with ``None``, then the earlier step's), and the execution ends ``reverted``, never left
    ``invoking``."""
    handle = open(tmp_path / "payload.txt", "w")  # noqa: SIM115 - closed in finally
    try:
        value = _unstorable(kind, handle)
        attempts: list[int] = []
        undone: list[Any] = []

        def produce(inp: Any, ctx: StepContext) -> Any:
            attempts.append(ctx.attempt)
            return value

        before = create_step("before", lambda inp: "B", lambda c: undone.append(("before", c)))
        bad = create_step({"name": "produce-bad", "max_retries": 1}, produce, lambda c: undone.append(("bad", c)))
        wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: bad(before(inp)))
        with pytest.raises(StepworkError) as err:
            await engine.run(wf, 1, transaction_id="tx")
        assert 'step "produce-bad"' in str(err.value)
        assert attempts == [1, 2]
        assert undone == [("bad", None), ("before", "B")]
        row = await only_row(engine, wf_name)
        assert row.state == "reverted"
        assert steps_of(row)["produce-bad"]["invoke"] == {"state": "failed", "status": "permanent_failure"}
        assert row.context is not None
        [error] = row.context["errors"]
        assert error["action"] == "produce-bad"
        assert error["error"]["name"] == "StepworkError"
        assert 'step "produce-bad"' in error["error"]["message"]
    finally:
        handle.close()


# -- R31: exceptions that resist serialization -------------------------------------------------------


class NeedsArguments(Exception):
    """An exception whose constructor needs more than the message (it cannot be rebuilt from args)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


class UnprintableError(Exception):
    """An exception whose ``__str__`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("this error cannot be printed")


def _raise_needs_arguments(value: Any) -> None:
    raise NeedsArguments(402, "card declined")


def _raise_unprintable(value: Any) -> None:
    raise UnprintableError()


def _one_step_workflow(name: str, invoke: Callable[[Any], Any]) -> Any:
    s = create_step("fails", invoke)
    return create_workflow({"name": name, "retention_time": 60}, lambda inp: s(inp))


async def test_r31_awkward_exceptions_are_stored_portably_and_read_back_elsewhere(open_engine: OpenEngine,
                                                                                  wf_name: str) -> None:
    """R31: a step raising an exception whose __init__ needs extra arguments, and one whose __str__
    raises: each is re-raised as the original object by the run that raised it, and stored as a
    portable record {message, name, stack} that a second engine lists and retrieves without error."""
    a, b = await open_engine(), await open_engine()
    for suffix, fail, error_type in (("args", _raise_needs_arguments, NeedsArguments),
                                     ("str", _raise_unprintable, UnprintableError)):
        with pytest.raises(error_type):
            await a.run(_one_step_workflow(f"{wf_name}-{suffix}", fail), 1, transaction_id="tx")
    [args_row] = await b.list_workflow_executions({"workflow_id": f"{wf_name}-args"})
    str_row = await b.retrieve_workflow_execution((await only_row(b, f"{wf_name}-str")).id)
    for row, name in ((args_row, "NeedsArguments"), (str_row, "UnprintableError")):
        assert row.state == "reverted"
        assert row.context is not None
        [record] = row.context["errors"]
        assert record["action"] == "fails"
        assert record["error"]["name"] == name
        assert isinstance(record["error"]["message"], str) and record["error"]["message"]
        assert isinstance(record["error"]["stack"], str)
        json.dumps(row.to_dict())  # the whole record is plain JSON
    assert args_row.context is not None
    assert args_row.context["errors"][0]["error"]["message"] == "402: card declined"


async def test_r31_a_stored_error_is_raised_as_a_stepwork_error_in_another_process(open_engine: OpenEngine,
                                                                                    wf_name: str) -> None:
    """R31: steps raising those exceptions have their failure ignored and the workflow waits on an async
    step; engine B (which never saw the exceptions) fails that step for good: the execution is
    compensated, and throw_on_error raises a StepworkError carrying the first stored error's name and
    message (SPEC §2.1), read from the database."""
    a, b = await open_engine(), await open_engine()
    start = create_step("start", lambda value: "S", lambda c: None)
    args = create_step({"name": "args", "continue_on_permanent_failure": True}, _raise_needs_arguments)
    unprintable = create_step({"name": "unprintable", "continue_on_permanent_failure": True}, _raise_unprintable)
    wait = create_step({"name": "wait", "async": True}, lambda value: None)
    wf = create_workflow({"name": wf_name, "retention_time": 60},
                         lambda inp: wait(unprintable(args(start(inp)))))
    first = await a.run(wf, 1, transaction_id="tx")
    assert first.transaction.state == "invoking"
    waiting = await only_row(b, wf_name)
    assert waiting.context is not None
    assert [e["error"]["name"] for e in waiting.context["errors"]] == ["NeedsArguments", "UnprintableError"]

    with pytest.raises(StepworkError) as err:
        await b.set_step_failure(f"{wf_name}:tx:wait:invoke", "gave up", force_permanent_failure=True)
    assert type(err.value) is StepworkError
    assert err.value.message == "402: card declined"
    assert getattr(err.value, "name", None) == "NeedsArguments"
    row = await b.retrieve_workflow_execution(waiting.id)
    assert row.state == "reverted"


# -- R33: JSON edge cases, the same on every backend -------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


ROUND_TRIP = "round trip"
REJECTED = "rejected"
EDGE_VALUES: list[tuple[str, Any, str]] = [
    ("nul-in-string", "a\u0000b", ROUND_TRIP),
    ("nul-in-key", {"k\u0000": "v\u0000"}, ROUND_TRIP),
    ("huge-int", 10**40, ROUND_TRIP),
    ("huge-negative-int-in-list", [-(10**40), 10**40 + 1], ROUND_TRIP),
    ("unicode", {"ключ ✓": "ünïcödé 😀"}, ROUND_TRIP),
    ("lone-surrogate", "\ud800", REJECTED),
    ("lone-surrogate-in-list", ["ok", "x\udfffy"], REJECTED),
    ("lone-surrogate-in-key", {"\ud800": 1}, REJECTED),
    ("nan", float("nan"), REJECTED),
    ("infinity", float("inf"), REJECTED),
    ("minus-infinity-nested", {"x": [-float("inf")]}, REJECTED),
    ("nesting-10000-deep", _nested(10_000), REJECTED),
]


@pytest.mark.parametrize(("label", "value", "outcome"), EDGE_VALUES, ids=[v[0] for v in EDGE_VALUES])
async def test_r33_edge_values_as_input_round_trip_exactly_or_are_refused_before_any_write(
        open_engine: OpenEngine, wf_name: str, label: str, value: Any, outcome: str) -> None:
    """R33: an edge value given as the workflow input either round-trips exactly through the database
    (the stored payload and step output read by a second engine, and the value a later step receives
    after that engine reloaded the execution) or is refused with StepworkError ``invalid_data`` before
    anything is written (no row). Which one is fixed per value, so every backend behaves the same."""
    a, b = await open_engine(), await open_engine()
    echo = create_step("echo", lambda v: v)
    wait = create_step({"name": "wait", "async": True}, lambda v: None)
    after = create_step("after", lambda pair: pair[0])
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: after([echo(inp), wait(inp)]))
    if outcome == REJECTED:
        with pytest.raises(StepworkError) as err:
            await a.run(wf, value, transaction_id="tx")
        assert err.value.type == "invalid_data"
        assert "cannot be stored" in str(err.value)
        assert await b.list_workflow_executions({"workflow_id": wf_name}) == []
        return
    first = await a.run(wf, value, transaction_id="tx")
    assert first.transaction.state == "invoking"
    done = await b.set_step_success(f"{wf_name}:tx:wait:invoke", None)  # B loads the run from the database
    assert done.transaction.state == "done"
    assert done.result == value
    row = await only_row(b, wf_name)
    assert row.context is not None
    assert row.context["data"]["payload"] == value
    assert row.context["data"]["invoke"]["echo"] == value
    assert row.context["data"]["invoke"]["after"] == value


@pytest.mark.parametrize(("label", "value", "outcome"), EDGE_VALUES, ids=[v[0] for v in EDGE_VALUES])
async def test_r33_edge_values_as_step_outputs_round_trip_or_fail_the_step_typed(
        open_engine: OpenEngine, wf_name: str, label: str, value: Any, outcome: str) -> None:
    """R33: the same values produced by a step (not given as input): a round-trip value is read back
    exactly by a second engine; a refused one fails that step with a StepworkError ``invalid_data``
    naming it, the execution is compensated and ends ``reverted`` (never stuck ``invoking``)."""
    a, b = await open_engine(), await open_engine()
    undone: list[Any] = []
    before = create_step("before", lambda v: "B", lambda c: undone.append(c))
    make = create_step("make-value", lambda v: value)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: make(before(inp)))
    if outcome == REJECTED:
        with pytest.raises(StepworkError) as err:
            await a.run(wf, 1, transaction_id="tx")
        assert err.value.type == "invalid_data"
        assert 'step "make-value"' in str(err.value)
        row = await only_row(b, wf_name)
        assert row.state == "reverted"
        assert undone == ["B"]
        return
    result = await a.run(wf, 1, transaction_id="tx")
    assert result.result == value
    row = await only_row(b, wf_name)
    assert row.state == "done"
    assert row.context is not None
    assert row.context["data"]["invoke"]["make-value"] == value


NAIVE = dt.datetime(2026, 1, 2, 3, 4, 5, 678901)
AWARE = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone(dt.timedelta(hours=2)))


def _make_naive(value: Any) -> dt.datetime:
    return NAIVE


def _make_aware(value: Any) -> dt.datetime:
    return AWARE


async def test_r33_naive_and_aware_datetimes_round_trip_distinctly(open_engine: OpenEngine, wf_name: str) -> None:
    """R33: a naive and an aware datetime returned by steps annotated ``-> datetime`` are stored as
    distinct ISO-8601 strings (no offset vs ``+02:00``) and, after a second engine reloaded the run
    from the database, reach the next step as equal datetimes: naive still naive, aware with its
    offset."""
    a, b = await open_engine(), await open_engine()
    received: list[Any] = []
    naive = create_step("naive", _make_naive)
    aware = create_step("aware", _make_aware)
    wait = create_step({"name": "wait", "async": True}, lambda v: None)
    use = create_step("use", lambda values: received.append(values) or "ok")
    wf = create_workflow({"name": wf_name, "retention_time": 60},
                         lambda inp: use({"naive": naive(inp), "aware": aware(inp), "w": wait(inp)}))
    await a.run(wf, 1, transaction_id="tx")
    await b.set_step_success(f"{wf_name}:tx:wait:invoke", "w")
    [values] = received
    assert isinstance(values["naive"], dt.datetime) and values["naive"].tzinfo is None
    assert values["naive"] == NAIVE
    assert isinstance(values["aware"], dt.datetime) and values["aware"].utcoffset() == dt.timedelta(hours=2)
    assert values["aware"] == AWARE
    row = await only_row(b, wf_name)
    assert row.context is not None
    assert row.context["data"]["invoke"]["naive"] == "2026-01-02T03:04:05.678901"
    assert row.context["data"]["invoke"]["aware"] == "2026-01-02T03:04:05.678901+02:00"


# -- R36: retention cleanup --------------------------------------------------------------------------


async def test_r36_cleanup_deletes_only_finished_rows_past_their_retention(engine: WorkflowEngine, wf_name: str,
                                                                           clock: Any) -> None:
    """R36: executions in every state (done, reverted, failed with retention_time=10; invoking on an async
    step; compensating on an async compensation), finished 1 s past and 1 s short of the cutoff: cleanup
    deletes exactly the finished ones past the cutoff, with their step rows; the unfinished ones are
    never deleted, however old."""
    ok = create_step("ok", lambda v: v)

    def boom(value: Any) -> None:
        raise RuntimeError("boom")

    def cannot_undo(value: Any) -> None:
        raise RuntimeError("cannot undo")

    made = create_step("made", lambda v: "M", lambda c: None)
    made_badly = create_step("made-badly", lambda v: "M", cannot_undo)
    made_async = create_step({"name": "made-async", "compensate_async": True}, lambda v: "M", lambda c: None)
    fails = create_step("fails", boom)
    wait = create_step({"name": "wait", "async": True}, lambda v: None)
    workflows = {
        "done": create_workflow({"name": f"{wf_name}-done", "retention_time": 10}, lambda inp: ok(inp)),
        "reverted": create_workflow({"name": f"{wf_name}-reverted", "retention_time": 10},
                                    lambda inp: fails(made(inp))),
        "failed": create_workflow({"name": f"{wf_name}-failed", "retention_time": 10},
                                  lambda inp: fails(made_badly(inp))),
        "invoking": create_workflow({"name": f"{wf_name}-invoking", "retention_time": 10},
                                    lambda inp: wait(inp)),
        "compensating": create_workflow({"name": f"{wf_name}-compensating", "retention_time": 10},
                                        lambda inp: fails(made_async(inp))),
    }

    async def execution(state: str, transaction_id: str) -> WorkflowExecution | None:
        rows = await engine.list_workflow_executions({"workflow_id": f"{wf_name}-{state}",
                                                      "transaction_id": transaction_id})
        return rows[0] if rows else None

    for state, wf in workflows.items():  # t0: the old ones
        result = await engine.run(wf, 1, transaction_id="old", throw_on_error=False)
        assert result.transaction.state == state
    clock.advance(2)
    for state in ("done", "reverted", "failed"):  # t0 + 2: the young ones
        await engine.run(workflows[state], 1, transaction_id="young", throw_on_error=False)
    keys = {}
    for state in workflows:
        for tx in ("old", "young"):
            row = await execution(state, tx)
            if row is not None:
                assert row.state == state
                keys[state, tx] = (row.id, key_of(row))
                assert await engine.store.steps(key_of(row)) != []

    clock.advance(9)  # t0 + 11: old finished ones 1 s past the cutoff, young ones 1 s short of it
    assert await engine.cleanup_expired_executions() >= 3  # (other tests' rows may share this database)
    for state in ("done", "reverted", "failed"):
        assert await execution(state, "old") is None
        execution_id, key = keys[state, "old"]
        assert await engine.store.steps(key) == []
        with pytest.raises(StepworkError) as err:
            await engine.retrieve_workflow_execution(execution_id)
        assert err.value.type == "not_found"
        young = await execution(state, "young")
        assert young is not None and young.state == state
        assert await engine.store.steps(keys[state, "young"][1]) != []
    for state in ("invoking", "compensating"):
        row = await execution(state, "old")
        assert row is not None and row.state == state
        assert await engine.store.steps(keys[state, "old"][1]) != []

    clock.advance(2)  # t0 + 13: the young ones are 1 s past the cutoff too
    assert await engine.cleanup_expired_executions() >= 3
    for state in ("done", "reverted", "failed"):
        assert await execution(state, "young") is None
        assert await engine.store.steps(keys[state, "young"][1]) == []
    clock.advance(10**7)  # unfinished executions are never removed, whatever their age
    await engine.cleanup_expired_executions()
    for state in ("invoking", "compensating"):
        row = await execution(state, "old")
        assert row is not None and row.state == state
        assert await engine.store.steps(keys[state, "old"][1]) != []


# -- R37: idempotency window = retention window ------------------------------------------------------


async def test_r37_idempotent_rerun_returns_the_original_while_retained_then_runs_anew(engine: WorkflowEngine,
                                                                                       wf_name: str,
                                                                                       clock: Any) -> None:
    """R37: an idempotent workflow with retention_time=30: re-running its transaction id while the
    execution is retained returns the original result without running anything (cleanup before the
    cutoff keeps it); once cleanup has purged it, the same id starts a new run (new run_id, the step
    runs again with the new input): the idempotency window is the retention window."""
    calls: list[int] = []
    charge = create_step("charge", lambda value: calls.append(value) or {"charged": value})
    wf = create_workflow({"name": wf_name, "idempotent": True, "retention_time": 30}, lambda inp: charge(inp))
    first = await engine.run(wf, 10, transaction_id="order-1")
    assert first.result == {"charged": 10}

    clock.advance(29)
    await engine.cleanup_expired_executions()
    again = await engine.run(wf, 99, transaction_id="order-1")
    assert again.result == {"charged": 10}
    assert again.transaction.run_id == first.transaction.run_id
    assert calls == [10]

    clock.advance(2)
    assert await engine.cleanup_expired_executions() >= 1
    assert await engine.list_workflow_executions({"workflow_id": wf_name}) == []
    fresh = await engine.run(wf, 99, transaction_id="order-1")
    assert fresh.result == {"charged": 99}
    assert fresh.transaction.run_id != first.transaction.run_id
    assert calls == [10, 99]
    row = await only_row(engine, wf_name)
    assert (row.run_id, row.state) == (fresh.transaction.run_id, "done")
    replay = await engine.run(wf, 7, transaction_id="order-1")
    assert (replay.result, calls) == ({"charged": 99}, [10, 99])
