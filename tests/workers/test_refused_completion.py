"""Found by the chaos soak (``make chaos``): a refused duplicate completion stranded an execution (fixed:
the refusal now hands a run adopted from a stopped owner to recovery at once).

In the soak, worker 0 answered an async step (``set_step_success``) and went on driving the run in
that call; PostgreSQL restarted while the next step ran, so the call failed and the execution was left
to recovery (lease abandoned, to expire). Worker 0's completer then tried the same key again (a
duplicate answer, refused: "Cannot set step success when status is done"). The refusal *released*
the lease it had just taken over (before the fix): ``lease_owner`` NULL, state ``invoking``, no timer. Recovery only
looks at executions with an expired lease owner, so nobody ever finishes it.

Here the same sequence in one process, deterministically: engine A completes the async step and is
"killed" in the middle of the next step; once A's lease has expired, engine B receives a duplicate
answer for the same key.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from stepwork import StepContext, StepworkError, WorkflowEngine, create_step, create_workflow
from tests.conftest import throwaway_pg_database


@pytest.mark.slow
async def test_a_refused_duplicate_answer_does_not_strand_an_execution_whose_owner_died(wf_name: str) -> None:
    hang = asyncio.Event()
    entered = asyncio.Event()

    async def after(value: Any, ctx: StepContext) -> str:
        if ctx.attempt == 1:
            entered.set()
            await hang.wait()  # engine A "dies" in here
        return "after-out"

    ask = create_step({"name": "ask", "async": True}, lambda value: None)
    then = create_step("after", after)
    wf = create_workflow({"name": wf_name, "retention_time": 600}, lambda inp: then(ask(inp)))
    key = f"{wf_name}:t-1:ask:invoke"
    with throwaway_pg_database("stepwork_refused") as url:
        a = WorkflowEngine(url, lease_ttl=0.5, poll_interval=3600)
        await a.start()
        await a.run(wf, 1, transaction_id="t-1")
        answering = asyncio.create_task(a.set_step_success(key, "first answer"))
        await asyncio.wait_for(entered.wait(), 10)  # the answer is stored; "after" runs in A
        await a.stop()  # A's lease is no longer renewed...
        answering.cancel()  # ...and its call is gone, as with a crash
        await asyncio.gather(answering, return_exceptions=True)
        # B started before A's lease expires, and polls only when told: the duplicate answer comes first.
        async with WorkflowEngine(url, lease_ttl=0.5, poll_interval=3600) as b:
            await asyncio.sleep(1.0)  # A's lease expires
            with pytest.raises(StepworkError):
                await b.set_step_success(key, "duplicate answer")  # refused: the step is done
            deadline = asyncio.get_running_loop().time() + 3
            while True:
                await b.fire_due()  # what B's poll does: timers, and recovery of executions whose owner died
                [execution] = await b.list_workflow_executions({"transaction_id": "t-1"})
                if execution.state == "done" or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.1)
            async with await psycopg.AsyncConnection.connect(url) as conn:
                cur = await conn.execute("SELECT state, lease_owner FROM workflow_execution")
                rows = await cur.fetchall()
            assert execution.state == "done", f"stranded: {rows}"


@pytest.mark.slow
async def test_an_answer_for_an_async_step_cut_short_says_so_and_is_taken_once_it_waits(wf_name: str) -> None:
    """Seen in the soak: engine A dies inside an async step's invoke (nothing says it waits yet), and
    B receives its answer. The answer is refused with a message that says the step does not wait yet
    (the completer tries again later), B invokes the step again (attempt 2, as recovery would), and the
    next answer completes the run."""
    hang = asyncio.Event()
    entered = asyncio.Event()

    async def ask(value: Any, ctx: StepContext) -> None:
        if ctx.attempt == 1:
            entered.set()
            await hang.wait()  # engine A "dies" in here

    wf = create_workflow({"name": wf_name, "retention_time": 600},
                         lambda inp: create_step({"name": "ask", "async": True}, ask)(inp))
    key = f"{wf_name}:t-1:ask:invoke"
    with throwaway_pg_database("stepwork_refused") as url:
        a = WorkflowEngine(url, lease_ttl=0.5, poll_interval=3600)
        await a.start()
        running = asyncio.create_task(a.run(wf, 1, transaction_id="t-1"))
        await asyncio.wait_for(entered.wait(), 10)
        # B starts while A still holds the lease (so B's start-up recovery leaves the run alone: had A's
        # lease run out before B started, which a slow start allows, B would take the run over at
        # once and the first answer would find the step waiting), and polls only when told.
        async with WorkflowEngine(url, lease_ttl=0.5, poll_interval=3600) as b:
            await a.stop()
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await asyncio.sleep(1.0)  # A's lease expires
            with pytest.raises(StepworkError, match="not waiting for a response yet"):
                await b.set_step_success(key, "too early")
            deadline = asyncio.get_running_loop().time() + 5
            while True:  # B re-invokes the step (attempt 2) in the background; then it waits
                try:
                    result = await b.set_step_success(key, "answer")
                    break
                except StepworkError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.1)
            [execution] = await b.list_workflow_executions({"transaction_id": "t-1"})
    assert execution.state == "done" and result.result == "answer"
    assert execution.execution["steps"]["_root.ask"]["invoke"]["state"] == "done"
