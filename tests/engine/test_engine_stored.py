"""The durable engine on every backend: stored runs, async steps, idempotency, listing, retention."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from pydantic import BaseModel

from stepwork import (
    Container,
    Modules,
    StepContext,
    StepResponse,
    StepworkError,
    WorkflowResponse,
    create_step,
    create_workflow,
)
from stepwork.engine.engine import WorkflowEngine


async def test_seed_hello_workflow_is_listed_by_transaction_id(engine: WorkflowEngine, wf_name: str,
                                                               clock: Any) -> None:
    """The seed's example: a stored workflow with retention is listed with the documented record."""
    said: list[str] = []
    step1 = create_step({"name": "step-1"}, lambda: said.append("Hello from step 1"))
    hello = create_workflow({"name": wf_name, "retention_time": 99999, "store": True}, lambda: step1())

    result = await hello(engine.container).run()
    [execution] = await engine.list_workflow_executions({"transaction_id": result.transaction.transaction_id})

    record = execution.to_dict()
    assert said == ["Hello from step 1"]
    assert set(record) == {"id", "workflow_id", "transaction_id", "run_id", "state", "execution", "context",
                           "retention_time", "created_at", "updated_at", "deleted_at"}
    assert record["id"].startswith("wf_exec_")
    assert record["workflow_id"] == wf_name
    assert record["state"] == "done"
    assert record["retention_time"] == 99999
    assert record["deleted_at"] is None
    assert record["execution"]["state"] == "done"
    assert record["execution"]["steps"]["_root.step-1"]["invoke"] == {"state": "done", "status": "ok"}
    assert record["execution"]["transactionId"] == result.transaction.transaction_id
    assert record["context"] == {"data": {"payload": None, "invoke": {"step-1": None}, "compensate": {}},
                                 "errors": []}
    created = dt.datetime.fromisoformat(record["created_at"].replace("Z", "+00:00"))
    assert created == dt.datetime.fromtimestamp(clock.time(), dt.UTC)
    assert execution.created_at == created


async def test_finished_run_without_retention_is_removed(engine: WorkflowEngine, wf_name: str) -> None:
    """A stored workflow without retention_time leaves no row once it finished."""
    s = create_step("s", lambda: 1)
    wf = create_workflow({"name": wf_name, "store": True}, lambda: s())
    result = await engine.run(wf, transaction_id="t-1")
    assert result.transaction.state == "done"
    assert await engine.list_workflow_executions({"workflow_id": wf_name}) == []


def _async_workflow(name: str, seen: list[Any], **opts: Any) -> Any:
    wait = create_step({"name": "wait", "async": True, **opts}, lambda value: seen.append(("wait", value)))
    after = create_step("after", lambda value: {"got": value})
    return create_workflow({"name": name, "retention_time": 60}, lambda inp: after(wait(inp)))


async def test_async_step_waits_then_continues_inside_set_step_success(engine: WorkflowEngine, wf_name: str) -> None:
    """An async step's run returns invoking; set_step_success stores the response and finishes the run."""
    seen: list[Any] = []
    wf = _async_workflow(wf_name, seen)

    first = await engine.run(wf, {"a": 1}, transaction_id="tx")
    assert first.transaction.state == "invoking"
    assert first.acknowledgement.has_finished is False
    [stored] = await engine.list_workflow_executions({"workflow_id": wf_name})
    assert stored.state == "invoking"
    assert stored.execution is not None
    assert stored.execution["steps"]["_root.wait"]["invoke"] == {"state": "invoking", "status": "waiting_response"}

    done = await engine.set_step_success(f"{wf_name}:tx:wait:invoke", {"ok": True})
    assert done.transaction.state == "done"
    assert done.result == {"got": {"ok": True}}
    assert seen == [("wait", {"a": 1})]


async def test_second_completion_is_refused_and_never_applied(engine: WorkflowEngine, wf_name: str) -> None:
    """The first completion wins; a second one raises not_allowed and changes nothing."""
    wf = _async_workflow(wf_name, [])
    await engine.run(wf, 1, transaction_id="tx")
    key = {"workflow_id": wf_name, "transaction_id": "tx", "step_id": "wait", "action": "invoke"}
    await engine.set_step_success(key, "first")
    with pytest.raises(StepworkError) as err:
        await engine.set_step_success(key, "second")
    assert err.value.type == "not_allowed"
    [stored] = await engine.list_workflow_executions({"workflow_id": wf_name})
    assert stored.context is not None
    assert stored.context["data"]["invoke"]["after"] == {"got": "first"}


async def test_concurrent_completions_apply_exactly_one(engine: WorkflowEngine, wf_name: str) -> None:
    """Two completions at once with different payloads: one is applied, the other refused (R09)."""
    wf = _async_workflow(wf_name, [])
    await engine.run(wf, 1, transaction_id="tx")
    outcomes = await asyncio.gather(engine.set_step_success(f"{wf_name}:tx:wait:invoke", "A"),
                                    engine.set_step_success(f"{wf_name}:tx:wait:invoke", "B"),
                                    return_exceptions=True)
    results = [o for o in outcomes if not isinstance(o, BaseException)]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(results) == 1 and len(errors) == 1
    assert isinstance(errors[0], StepworkError) and errors[0].type == "not_allowed"
    assert results[0].result in ({"got": "A"}, {"got": "B"})


@pytest.mark.parametrize(("key", "expected_type"), [
    ("{wf}:nope:wait:invoke", "not_found"),
    ("{wf}:tx:missing:invoke", "not_found"),
    ("{wf}:tx:wait:compensate", "invalid_data"),
    ("{wf}:tx:after:invoke", "not_allowed"),
    ("not-a-key", "invalid_data"),
])
async def test_bad_completions_get_typed_errors(engine: WorkflowEngine, wf_name: str, key: str,
                                                expected_type: str) -> None:
    """Unknown transaction or step, wrong action, a step that isn't waiting: each a typed error (R10)."""
    wf = _async_workflow(wf_name, [])
    await engine.run(wf, 1, transaction_id="tx")
    with pytest.raises(StepworkError) as err:
        await engine.set_step_success(key.format(wf=wf_name), "x")
    assert err.value.type == expected_type


async def test_set_step_failure_applies_retries_then_compensates(engine: WorkflowEngine, wf_name: str) -> None:
    """A failure of an async step with max_retries=1 invokes it again; the next failure compensates."""
    calls: list[int] = []
    undone: list[Any] = []
    first = create_step("first", lambda v: "made", lambda c: undone.append(c))

    def wait_invoke(value: Any, ctx: StepContext) -> None:
        calls.append(ctx.attempt)

    wait = create_step({"name": "wait", "async": True, "max_retries": 1}, wait_invoke)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: wait(first(inp)))
    await engine.run(wf, 1, transaction_id="tx")
    again = await engine.set_step_failure(f"{wf_name}:tx:wait:invoke", "card declined")
    assert again.transaction.state == "invoking"
    assert calls == [1, 2]
    final = await engine.set_step_failure(f"{wf_name}:tx:wait:invoke", {"message": "still declined"},
                                          throw_on_error=False)
    assert final.transaction.state == "reverted"
    assert undone == ["made"]
    assert final.errors[0].error["message"] == "still declined"


async def test_forced_permanent_failure_skips_retries(engine: WorkflowEngine, wf_name: str) -> None:
    """force_permanent_failure compensates at once, and throw_on_error raises the recorded error."""
    wf = _async_workflow(wf_name, [], max_retries=3)
    await engine.run(wf, 1, transaction_id="tx")
    with pytest.raises(StepworkError) as err:
        await engine.set_step_failure(f"{wf_name}:tx:wait:invoke", "gone", force_permanent_failure=True)
    assert "gone" in str(err.value)
    [stored] = await engine.list_workflow_executions({"workflow_id": wf_name})
    assert stored.state == "reverted"


async def test_step_response_keeps_its_compensation_input(engine: WorkflowEngine, wf_name: str) -> None:
    """A StepResponse given to set_step_success keeps its compensate input for a later rollback."""
    undone: list[Any] = []
    wait = create_step({"name": "wait", "async": True}, lambda v: None, lambda c: undone.append(c))

    def explode(value: Any) -> None:
        raise RuntimeError("later failure")

    boom = create_step("boom", explode)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: boom(wait(inp)))
    await engine.run(wf, 1, transaction_id="tx")
    result = await engine.set_step_success(f"{wf_name}:tx:wait:invoke", StepResponse("out", {"id": 7}),
                                           throw_on_error=False)
    assert result.transaction.state == "reverted"
    assert undone == [{"id": 7}]


async def test_idempotent_workflow_returns_the_stored_result(engine: WorkflowEngine, wf_name: str) -> None:
    """Running an idempotent workflow again with a finished id runs nothing and returns the result (R37)."""
    calls: list[int] = []
    s = create_step("s", lambda v: calls.append(v) or v * 2)
    wf = create_workflow({"name": wf_name, "idempotent": True, "retention_time": 60}, lambda inp: s(inp))
    first = await engine.run(wf, 21, transaction_id="order-1")
    second = await engine.run(wf, 99, transaction_id="order-1")
    assert (first.result, second.result) == (42, 42)
    assert calls == [21]
    assert second.transaction.run_id == first.transaction.run_id
    assert len(await engine.list_workflow_executions({"workflow_id": wf_name})) == 1


async def test_finished_non_idempotent_id_starts_a_new_run(engine: WorkflowEngine, wf_name: str) -> None:
    """A finished, non-idempotent transaction id starts a new run with a new run_id."""
    s = create_step("s", lambda v: v)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    first = await engine.run(wf, 1, transaction_id="same")
    second = await engine.run(wf, 2, transaction_id="same")
    assert first.transaction.run_id != second.transaction.run_id
    rows = await engine.list_workflow_executions({"transaction_id": "same", "workflow_id": wf_name})
    assert sorted(r.run_id for r in rows) == sorted([first.transaction.run_id, second.transaction.run_id])


async def test_concurrent_starts_with_one_id_run_once(engine: WorkflowEngine, wf_name: str) -> None:
    """Twenty concurrent starts with one explicit id: the body runs once, the others get conflict (R08)."""
    release = asyncio.Event()
    calls: list[int] = []

    async def slow(value: Any) -> int:
        calls.append(value)
        await release.wait()
        return 1

    s = create_step("slow", slow)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    tasks = [asyncio.create_task(engine.run(wf, n, transaction_id="dup")) for n in range(20)]
    await asyncio.sleep(0.05)
    release.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    conflicts = [o for o in outcomes if isinstance(o, StepworkError) and o.type == "conflict"]
    assert len(calls) == 1
    assert len(conflicts) == 19
    assert "Transaction already started for transaction_id: dup" in str(conflicts[0])


async def test_two_engines_sharing_a_database_share_one_live_execution(database_url: str, wf_name: str,
                                                                       clock: Any, tmp_path: Any) -> None:
    """Across two engines on one database, a second start of a live id resumes it, never duplicates it."""
    if database_url == "sqlite://":  # an in-memory database is private to one engine: share a file instead
        database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    wait = create_step({"name": "wait", "async": True}, lambda v: None)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: wait(inp))
    async with WorkflowEngine(database_url, clock=clock) as a, WorkflowEngine(database_url, clock=clock) as b:
        first = await a.run(wf, 1, transaction_id="shared")
        assert first.transaction.state == "invoking"
        # The execution is unfinished and free: the second engine resumes it rather than duplicating it.
        second = await b.run(wf, 2, transaction_id="shared")
        assert second.transaction.run_id == first.transaction.run_id
        assert len(await a.list_workflow_executions({"workflow_id": wf_name})) == 1


async def test_run_through_the_container_uses_the_engine(engine: WorkflowEngine, wf_name: str) -> None:
    """wf(container).run() and wf.run(container=...) go through the registered engine."""
    s = create_step("s", lambda v: v + 1)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    container = Container()
    container.register(Modules.WORKFLOW_ENGINE, engine)
    a = await wf(container).run(1, transaction_id="a")
    b = await wf.run(2, container=container, transaction_id="b")
    assert (a.result, b.result) == (2, 3)
    assert {r.transaction_id for r in await engine.list_workflow_executions({"workflow_id": wf_name})} == {"a", "b"}


async def test_retention_keeps_then_cleanup_removes_only_expired_finished(engine: WorkflowEngine, wf_name: str,
                                                                           clock: Any) -> None:
    """Finished executions are kept retention_time seconds, then removed; unfinished ones never (R36)."""
    short = create_step("s", lambda v: v)
    done_wf = create_workflow({"name": wf_name, "retention_time": 10}, lambda inp: short(inp))
    waiting = _async_workflow(f"{wf_name}-waiting", [])
    await engine.run(done_wf, 1, transaction_id="kept")
    await engine.run(waiting, 1, transaction_id="running")
    clock.advance(9)
    await engine.cleanup_expired_executions()  # (other tests' rows may share this database)
    assert len(await engine.list_workflow_executions({"workflow_id": wf_name})) == 1
    clock.advance(2)
    assert await engine.cleanup_expired_executions() >= 1
    assert await engine.list_workflow_executions({"workflow_id": wf_name}) == []
    [still] = await engine.list_workflow_executions({"workflow_id": f"{wf_name}-waiting"})
    assert still.state == "invoking"


async def test_listing_filters_pagination_and_order(engine: WorkflowEngine, wf_name: str, clock: Any) -> None:
    """Filters by id, state (value and list), time operators and q; skip/take/order; count."""
    s = create_step("s", lambda v: v)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    for n in range(5):
        await engine.run(wf, n, transaction_id=f"Order-{n}")
        clock.advance(1)
    rows, count = await engine.list_and_count_workflow_executions({"workflow_id": wf_name}, skip=1, take=2,
                                                                  order={"created_at": "DESC"})
    assert count == 5
    assert [r.transaction_id for r in rows] == ["Order-3", "Order-2"]
    assert [r.transaction_id for r in await engine.list_workflow_executions(
        {"workflow_id": wf_name, "q": "order-4"})] == ["Order-4"]
    by_state = await engine.list_workflow_executions({"workflow_id": wf_name, "state": ["done", "failed"]})
    assert len(by_state) == 5
    cutoff = dt.datetime.fromtimestamp(clock.time() - 3, dt.UTC)
    newer = await engine.list_workflow_executions({"workflow_id": wf_name, "created_at": {"$gt": cutoff}})
    assert sorted(r.transaction_id for r in newer) == ["Order-3", "Order-4"]
    one = rows[0]
    assert (await engine.list_workflow_executions({"id": one.id}))[0].transaction_id == "Order-3"
    assert (await engine.retrieve_workflow_execution(one.id)).transaction_id == "Order-3"


@pytest.mark.parametrize("filters", [{"nope": 1}, {"state": {"$regex": "x"}}, {"created_at": "yesterday"},
                                     {"q": 3}])
async def test_bad_filters_are_rejected(engine: WorkflowEngine, filters: dict[str, Any]) -> None:
    """Unknown filter keys, operators or values raise invalid_data."""
    with pytest.raises(StepworkError) as err:
        await engine.list_workflow_executions(filters)
    assert err.value.type == "invalid_data"


async def test_retrieve_unknown_id_is_not_found(engine: WorkflowEngine) -> None:
    """retrieve_workflow_execution of an unknown id raises not_found."""
    with pytest.raises(StepworkError) as err:
        await engine.retrieve_workflow_execution("wf_exec_nope")
    assert err.value.type == "not_found"


async def test_non_serializable_output_fails_the_step_naming_it(engine: WorkflowEngine, wf_name: str) -> None:
    """A step returning what cannot be stored fails with an error naming the step (R30)."""
    s = create_step("makes-a-lambda", lambda v: {"fn": lambda: 1})
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    result = await engine.run(wf, 1, throw_on_error=False)
    assert result.transaction.state == "reverted"
    message = result.errors[0].error["message"]
    assert 'step "makes-a-lambda"' in message and "cannot be stored" in message


async def test_non_serializable_input_is_refused_before_writing(engine: WorkflowEngine, wf_name: str) -> None:
    """A workflow input that cannot be stored raises invalid_data and writes nothing."""
    s = create_step("s", lambda v: v)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    with pytest.raises(StepworkError) as err:
        await engine.run(wf, {"x": float("nan")})
    assert err.value.type == "invalid_data"
    assert await engine.list_workflow_executions({"workflow_id": wf_name}) == []


class Brand(BaseModel):
    id: str
    created: dt.datetime


async def test_annotated_outputs_are_restored_to_their_type(engine: WorkflowEngine, wf_name: str) -> None:
    """After a reload from the database, a pydantic output reaches the next step as the model again."""
    def make(value: Any) -> Brand:
        return Brand(id="b1", created=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))

    seen: list[Any] = []
    make_step = create_step("make", make)
    wait = create_step({"name": "wait", "async": True}, lambda v: None)
    use = create_step("use", lambda pair: seen.append(pair) or "ok")
    wf = create_workflow({"name": wf_name, "retention_time": 60},
                         lambda inp: WorkflowResponse(use({"brand": make_step(inp), "w": wait(inp)})))
    await engine.run(wf, 1, transaction_id="tx")
    await engine.set_step_success(f"{wf_name}:tx:wait:invoke", "w")
    [pair] = seen
    assert isinstance(pair["brand"], Brand)
    assert pair["brand"].created == dt.datetime(2026, 1, 2, tzinfo=dt.UTC)


@pytest.mark.parametrize("value", ["nul\u0000byte", 10**40, "unicode ✓ ünïcödé", {"nested": [1, 2.5, None, True]}])
async def test_awkward_json_values_round_trip_exactly(engine: WorkflowEngine, wf_name: str, value: Any) -> None:
    """\\u0000, huge integers and unicode survive the database unchanged on every backend (R33)."""
    s = create_step("s", lambda v: v)
    wait = create_step({"name": "wait", "async": True}, lambda v: None)
    echo = create_step("echo", lambda v: v)

    def compose(inp: Any) -> Any:
        wait(inp)
        return echo(s(inp))

    wf = create_workflow({"name": wf_name, "retention_time": 60}, compose)
    await engine.run(wf, value, transaction_id="tx")
    result = await engine.set_step_success(f"{wf_name}:tx:wait:invoke", None)
    assert result.result == value
    [stored] = await engine.list_workflow_executions({"workflow_id": wf_name})
    assert stored.context is not None
    assert stored.context["data"]["payload"] == value


async def test_cancel_reverts_a_done_execution(engine: WorkflowEngine, wf_name: str) -> None:
    """Cancel of a finished, retained execution compensates its steps, newest first: reverted."""
    undone: list[str] = []
    a = create_step("a", lambda v: "A", lambda c: undone.append(c))
    b = create_step("b", lambda v: "B", lambda c: undone.append(c))
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: b(a(inp)))
    await engine.run(wf, 1, transaction_id="tx")
    result = await engine.cancel(wf_name, "tx")
    assert result is not None and result.transaction.state == "reverted"
    assert undone == ["B", "A"]
    with pytest.raises(StepworkError) as err:
        await engine.cancel(wf_name, "tx")
    assert err.value.type == "not_allowed"


async def test_cancel_fails_a_waiting_async_step_at_once(engine: WorkflowEngine, wf_name: str) -> None:
    """Cancelling while an async step waits fails it immediately and reverts (a deviation from Medusa)."""
    undone: list[Any] = []
    first = create_step("first", lambda v: "made", lambda c: undone.append(c))
    wait = create_step({"name": "wait", "async": True}, lambda v: None)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: wait(first(inp)))
    await engine.run(wf, 1, transaction_id="tx")
    result = await engine.cancel(wf_name, "tx")
    assert result is not None and result.transaction.state == "reverted"
    assert undone == ["made"]


async def test_cancel_unknown_transaction(engine: WorkflowEngine, wf_name: str) -> None:
    """Cancel of an unknown transaction raises not_found, or returns None without throw_on_error."""
    s = create_step("s", lambda v: v)
    create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    with pytest.raises(StepworkError) as err:
        await engine.cancel(wf_name, "nope")
    assert err.value.type == "not_found"
    assert await engine.cancel(wf_name, "nope", throw_on_error=False) is None


async def test_subscribers_get_events_and_scoped_ones_are_dropped_after_finish(engine: WorkflowEngine,
                                                                               wf_name: str) -> None:
    """Workflow-wide subscribers stay; a transaction-scoped one gets its events then is dropped."""
    everything: list[str] = []
    scoped: list[str] = []
    wf = _async_workflow(wf_name, [])
    await engine.subscribe(wf_name, lambda e: everything.append(e["event_type"]))
    await engine.subscribe(wf_name, lambda e: scoped.append(e["event_type"]), transaction_id="tx",
                           subscriber_id="mine")
    await engine.run(wf, 1, transaction_id="tx")
    assert "on_step_awaiting" in scoped
    await engine.set_step_success(f"{wf_name}:tx:wait:invoke", "ok")
    assert scoped[-1] == "on_finish"
    count = len(scoped)
    await engine.run(wf, 1, transaction_id="tx")
    assert len(scoped) == count
    assert everything.count("on_begin") == 2


async def test_engine_must_be_started(wf_name: str) -> None:
    """Using an engine that is not started raises not_allowed with what to do."""
    eng = WorkflowEngine("sqlite://")
    with pytest.raises(StepworkError) as err:
        await eng.list_workflow_executions()
    assert err.value.type == "not_allowed" and "async with engine" in str(err.value)


def test_bad_engine_settings_are_rejected() -> None:
    """A bad database URL or a non-positive lease raises invalid_data."""
    with pytest.raises(StepworkError):
        WorkflowEngine("mysql://nope")
    with pytest.raises(StepworkError):
        WorkflowEngine("sqlite://", lease_ttl=0)
