"""Findings 4 and 5: replaying a finished ``idempotent`` transaction returns the stored result to
every caller, runs nothing and notifies nothing again (SPEC §2: "an idempotent workflow returns the
stored result without running anything"; ``on_finish`` is emitted once per execution)."""

from __future__ import annotations

import asyncio
from typing import Any

from stepwork import WorkflowEngine, create_step, create_workflow


async def test_concurrent_replays_of_a_finished_idempotent_transaction_all_get_the_stored_result(
        engine: WorkflowEngine, wf_name: str) -> None:
    """Ten concurrent runs of a transaction id that already finished ``done``: all ten get the
    stored result; the step is not invoked again."""
    calls: list[Any] = []
    charge = create_step("charge", lambda v: calls.append(v) or {"charged": v})
    wf = create_workflow({"name": wf_name, "idempotent": True, "retention_time": 600}, lambda inp: charge(inp))
    first = await engine.run(wf, 7, transaction_id="idem-replay")
    assert first.result == {"charged": 7}

    outcomes = await asyncio.gather(*[engine.run(wf, 7, transaction_id="idem-replay") for _ in range(10)],
                                    return_exceptions=True)
    errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    assert errors == [], f"{len(errors)} of 10 replays failed: {errors[:2]}"
    assert [(o.transaction.state, o.result) for o in outcomes] == [("done", {"charged": 7})] * 10
    assert calls == [7]
    rows = await engine.list_workflow_executions({"workflow_id": wf_name})
    assert [(r.transaction_id, r.state) for r in rows] == [("idem-replay", "done")]


async def test_a_replay_of_a_finished_idempotent_transaction_emits_no_second_on_finish(
        engine: WorkflowEngine, wf_name: str) -> None:
    """A subscriber of the workflow sees one ``on_finish`` for the execution, however often its
    finished transaction is run again."""
    events: list[str] = []
    charge = create_step("charge", lambda v: {"charged": v})
    wf = create_workflow({"name": wf_name, "idempotent": True, "retention_time": 600}, lambda inp: charge(inp))
    await engine.subscribe(wf_name, lambda event: events.append(event["event_type"]))
    first = await engine.run(wf, 3, transaction_id="idem-finish")
    assert events.count("on_finish") == 1
    again = await engine.run(wf, 3, transaction_id="idem-finish")
    assert again.result == first.result == {"charged": 3}
    assert again.transaction.state == "done"
    assert events.count("on_finish") == 1, f"events seen: {events}"
