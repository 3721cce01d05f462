"""A started engine registers Modules.QUERY over its own database; use_query_graph_step runs it in a workflow."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from stepwork import Container, Modules, StepworkError, WorkflowEngine, create_step, create_workflow, transform
from stepwork.app import use_query_graph_step
from stepwork.query import Query
from tests.query.models import Brand, Product


async def test_workflow_executions_are_queryable_through_the_engine(engine: WorkflowEngine, wf_name: str,
                                                                    clock: Any) -> None:
    """Stored runs show up in workflow_execution(s) with their ids, state and aware UTC times."""
    s = create_step("s", lambda value: value)
    wf = create_workflow({"name": wf_name, "retention_time": 600}, lambda inp: s(inp))
    for n in range(3):
        await engine.run(wf, {"n": n}, transaction_id=f"tx-{n}")
    query = engine.container.resolve(Modules.QUERY)
    assert isinstance(query, Query)
    result = await query.graph("workflow_executions", ["transaction_id", "state", "created_at"],
                               {"workflow_id": wf_name, "transaction_id": {"$in": ["tx-0", "tx-2"]}},
                               {"order": {"transaction_id": "DESC"}})
    assert [r["transaction_id"] for r in result["data"]] == ["tx-2", "tx-0"]
    assert {r["state"] for r in result["data"]} == {"done"}
    created = result["data"][0]["created_at"]
    assert created == dt.datetime.fromtimestamp(clock.time(), dt.UTC)
    since = await query.graph("workflow_execution", ["id"],
                              {"workflow_id": wf_name, "created_at": {"$gte": clock.time() - 1}},
                              {"take": 2})
    assert since["metadata"] == {"count": 3, "skip": 0, "take": 2}
    with pytest.raises(StepworkError, match='Unknown field "execution"'):
        await query.graph("workflow_execution", ["execution"])


async def test_an_engine_keeps_a_query_registered_before_it_starts(database_url: str) -> None:
    """An application's query (with its models) is not replaced by the engine's."""
    container = Container()
    mine = Query(database_url, models=[Brand, Product])
    container.register(Modules.QUERY, mine)
    async with WorkflowEngine(database_url, container=container) as eng:
        assert eng.container.resolve(Modules.QUERY) is mine
    mine.close()


async def test_use_query_graph_step_twice_in_a_workflow(engine: WorkflowEngine, wf_name: str) -> None:
    """The step resolves Modules.QUERY from the run's container; .config(name=...) lets it run twice."""
    seen: list[Any] = []
    record = create_step("record", lambda value: seen.append(value) or value)
    wf = create_workflow({"name": wf_name, "retention_time": 600}, lambda inp: record({
        "first": use_query_graph_step({"entity": "workflow_execution", "fields": ["transaction_id"],
                                       "filters": {"workflow_id": wf_name, "state": "done"}}),
        "second": use_query_graph_step(transform(inp, lambda i: {
            "entity": "workflow_execution", "fields": ["state"], "filters": {"transaction_id": i["tx"]},
        })).config(name="get-current"),
    }))
    await engine.run(wf, {"tx": "one"}, transaction_id="one")
    result = await engine.run(wf, {"tx": "two"}, transaction_id="two")
    assert result.transaction.state == "done"
    out = seen[-1]
    assert [r["transaction_id"] for r in out["first"]["data"]] == ["one"]
    assert out["second"]["data"][0]["state"] in ("invoking", "not_started")  # itself, still running


async def test_use_query_graph_step_errors_fail_the_step(engine: WorkflowEngine, wf_name: str) -> None:
    """An unknown entity fails the run with invalid_data; throw_if_key_not_found fails on no match."""
    wf = create_workflow(wf_name, lambda inp: use_query_graph_step(inp))
    bad = await wf(engine.container).run({"entity": "nope"}, throw_on_error=False)
    assert bad.errors and "Unknown entity" in str(bad.errors[0].error)
    missing = await wf(engine.container).run({"entity": "workflow_execution", "filters": {"id": "x"},
                                              "options": {"throw_if_key_not_found": True}},
                                             throw_on_error=False)
    assert missing.errors and "No workflow_execution matches" in str(missing.errors[0].error)
