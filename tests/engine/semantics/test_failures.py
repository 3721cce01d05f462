"""Retries, timeouts, errors, records and events on every path."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from stepwork import StepContext, StepResponse, StepTimeoutError, TransactionTimeoutError, create_step

from .conftest import GATE, ExecutionPath, invoke_outputs, states, step_records

SUCCEEDED = ("done", "ok", "dormant", "idle")
SUCCEEDED_COMPENSATED = ("done", "ok", "reverted", "ok")
TIMED_OUT_COMPENSATED = ("timeout", "permanent_failure", "reverted", "ok")
NEVER_REACHED = ("not_started", "idle", "dormant", "idle")


class NeedsArgs(Exception):
    """An exception whose __init__ needs two arguments (it cannot be rebuilt from its args)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


async def test_immediate_retries_with_attempt_counts(path: ExecutionPath, wf_name: str) -> None:
    """max_retries=2 without interval: attempts 1, 2, 3 in the run, one idempotency key; no error recorded."""
    seen: list[tuple[int, str]] = []

    async def flaky(inp: Any, ctx: StepContext) -> str:
        seen.append((ctx.attempt, ctx.idempotency_key))
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt}")
        return f"ok after {ctx.attempt}"

    step = create_step({"name": "flaky", "max_retries": 2}, flaky)
    after = create_step("after", lambda v: v.upper())
    result = await path.run(path.workflow(wf_name, lambda inp: after(step(inp))), transaction_id="tx-retry")
    key = f"{wf_name}:tx-retry:flaky:invoke"
    assert seen == [(1, key), (2, key), (3, key)]
    assert result.result == "OK AFTER 3"
    assert result.errors == []
    assert result.transaction.state == "done"
    records = step_records(result)
    assert (records["flaky"]["attempts"], records["flaky"]["failures"]) == (3, 2)
    assert states(result) == {"flaky": SUCCEEDED, "after": SUCCEEDED}


async def test_exhausted_retries_throw_on_error_false_and_true(path: ExecutionPath, wf_name: str) -> None:
    """Retries used up: one error (the last attempt's), the run reverts; with throw_on_error it raises that error."""
    raised_errors: list[BaseException] = []
    compensated: list[Any] = []

    def always(inp: Any, ctx: StepContext) -> None:
        raised_errors.append(NeedsArgs("E42", f"attempt {ctx.attempt}"))
        raise raised_errors[-1]

    first = create_step("first", lambda v: "first", lambda c: compensated.append(c))
    fail = create_step({"name": "fail", "max_retries": 1}, always)
    wf = path.workflow(wf_name, lambda inp: (first(inp), fail(inp)))

    result = await path.run(wf, {"a": 1}, throw_on_error=False)
    assert result.transaction.state == "reverted"
    assert compensated == ["first"]
    assert len(raised_errors) == 2
    [failure] = result.errors
    assert (failure.action, failure.handler_type) == ("fail", "invoke")
    assert (failure.error["name"], failure.error["message"]) == ("NeedsArgs", "E42: attempt 2")
    assert failure.exception is raised_errors[-1]
    assert result.acknowledgement.has_finished is True
    assert result.acknowledgement.has_failed is True
    assert result.acknowledgement.workflow_id == wf_name
    assert result.transaction.workflow_id == wf_name
    assert [(e["action"], e["handler_type"]) for e in result.transaction.context["errors"]] == [("fail", "invoke")]

    try:
        await path.run(wf, {"a": 1})
    except Exception as raised:  # noqa: BLE001 - compared below
        path.check_raised(raised, raised_errors[-1])
    else:
        raise AssertionError("the run did not raise")


async def test_step_timeout_cancels_a_coroutine_step(path: ExecutionPath, wf_name: str) -> None:
    """A coroutine step past its 0.05 s timeout is cancelled, not retried, ends timeout; the run reverts."""
    log: list[Any] = []

    async def slow(inp: Any, ctx: StepContext) -> str:
        log.append(("started", ctx.attempt))
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            log.append("cancelled")
            raise
        return "late"

    first = create_step("first", lambda v: "first", lambda c: log.append(("undo first", c)))
    step = create_step({"name": "slow", "timeout": 0.05, "max_retries": 2}, slow,
                       lambda c: log.append(("undo slow", c)))
    never = create_step("never", lambda v: log.append("never"))
    wf = path.workflow(wf_name, lambda inp: never(step(first(inp))))

    started = time.monotonic()
    result = await path.run(wf, throw_on_error=False)
    assert time.monotonic() - started < 0.8
    assert log == [("started", 1), "cancelled", ("undo slow", None), ("undo first", "first")]
    assert result.transaction.state == "reverted"
    assert states(result) == {"first": SUCCEEDED_COMPENSATED, "slow": TIMED_OUT_COMPENSATED, "never": NEVER_REACHED}
    [failure] = result.errors
    assert (failure.action, failure.error["name"]) == ("slow", "StepTimeoutError")
    assert isinstance(failure.exception, StepTimeoutError)

    try:
        await path.run(wf)
    except StepTimeoutError as raised:
        assert raised.name == "StepTimeoutError"
    else:
        raise AssertionError("the run did not raise StepTimeoutError")


async def test_coroutine_step_within_its_timeout_succeeds(path: ExecutionPath, wf_name: str) -> None:
    """A coroutine step that returns before its timeout is done/ok."""
    async def quick(inp: Any) -> str:
        await asyncio.sleep(0)
        return "ok"

    step = create_step({"name": "quick", "timeout": 0.5}, quick)
    result = await path.run(path.workflow(wf_name, lambda inp: step(inp)))
    assert result.result == "ok"
    assert states(result) == {"quick": SUCCEEDED}


async def test_workflow_timeout_cancels_the_running_step_and_reverts(path: ExecutionPath, wf_name: str) -> None:
    """A workflow timeout cancels the running coroutine step (timeout, TransactionTimeoutError) and rolls back."""
    log: list[Any] = []

    async def slow(inp: Any) -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            log.append("cancelled")
            raise
        return "late"

    first = create_step("first", lambda v: "first", lambda c: log.append(("undo first", c)))
    step = create_step("slow", slow)
    # (1 s: the resumed path stops one engine and starts another at its gate, within the timeout)
    wf = path.workflow(wf_name, lambda inp: step(first(inp)), timeout=1.0)
    events = {"on_timeout": lambda e: log.append("on_timeout")}

    started = time.monotonic()
    result = await path.run(wf, throw_on_error=False, events=events)
    assert time.monotonic() - started < 4.0  # (the step sleeps 5 s: it was cancelled)
    assert result.transaction.state == "reverted"
    assert set(log) == {"cancelled", "on_timeout", ("undo first", "first")}
    assert log[-1] == ("undo first", "first")
    assert states(result)["slow"][:2] == ("timeout", "permanent_failure")
    assert states(result)["first"] == SUCCEEDED_COMPENSATED
    assert result.transaction.execution["timedOutAt"] is not None
    [failure] = result.errors
    assert (failure.action, failure.error["name"]) == ("slow", "TransactionTimeoutError")
    assert isinstance(failure.exception, TransactionTimeoutError)


async def test_execution_record_shape(path: ExecutionPath, wf_name: str) -> None:
    """The execution record: ids, model, step ids by path, depth, next, definitions, flags, context."""
    a = create_step("a", lambda v: {"a": v})
    b = create_step("b", lambda v: StepResponse(v["a"] + 1, "undo-b"), lambda c: None)
    result = await path.run(path.workflow(wf_name, lambda inp: b(a(inp))), 41, transaction_id="tx-shape")

    execution = result.transaction.execution
    assert execution["state"] == "done"
    assert execution["transactionId"] == "tx-shape" == result.transaction.transaction_id
    assert execution["runId"] == result.transaction.run_id
    assert execution["modelId"] == wf_name
    assert execution["options"]["name"] == wf_name
    steps = execution["steps"]
    assert list(steps) == ["_root", f"_root.{GATE}", f"_root.{GATE}.a", f"_root.{GATE}.a.b"]
    assert steps["_root"] == {"id": "_root", "next": [f"_root.{GATE}"]}
    rec_a, rec_b = steps[f"_root.{GATE}.a"], steps[f"_root.{GATE}.a.b"]
    assert (rec_a["id"], rec_a["depth"], rec_a["next"]) == (f"_root.{GATE}.a", 2, [f"_root.{GATE}.a.b"])
    assert (rec_b["depth"], rec_b["next"]) == (3, [])
    assert rec_a["definition"] == {"action": "a", "noCompensation": True}
    assert rec_b["definition"] == {"action": "b", "noCompensation": False}
    for rec in (rec_a, rec_b):
        assert rec["invoke"] == {"state": "done", "status": "ok"}
        assert rec["compensate"] == {"state": "dormant", "status": "idle"}
        assert (rec["attempts"], rec["failures"]) == (1, 0)
        assert isinstance(rec["startedAt"], int)
        assert isinstance(rec["lastAttempt"], int)
    assert execution["definition"]["next"]["action"] == GATE
    assert execution["definition"]["next"]["next"]["action"] == "a"
    for flag in ("hasFailedSteps", "hasSkippedSteps", "hasRevertedSteps", "hasSkippedOnFailureSteps",
                 "hasWaitingSteps"):
        assert execution[flag] is False, flag
    assert execution["timedOutAt"] is None
    assert execution["cancelledAt"] is None
    context = result.transaction.context
    assert context["data"]["payload"] == 41
    assert invoke_outputs(result) == {"a": {"a": 41}, "b": 42}
    assert context["data"]["compensate"] == {}
    assert context["errors"] == []
    assert result.result == 42
    assert result.acknowledgement.to_dict()["has_finished"] is True
    assert result.acknowledgement.transaction_id == "tx-shape"


async def test_events_of_a_run_that_rolls_back(path: ExecutionPath, wf_name: str) -> None:
    """Per-run events, in order, for a then b failing (b compensated), ending with on_finish(reverted)."""
    seen: list[dict[str, Any]] = []
    names = ("on_begin", "on_step_begin", "on_step_success", "on_step_failure", "on_compensate_begin",
             "on_compensate_step_success", "on_finish")
    events = dict.fromkeys(names, seen.append)
    a = create_step("a", lambda v: {"a": 1})
    b = create_step("b", lambda v: 1 / 0, lambda c: "b undone")
    result = await path.run(path.workflow(wf_name, lambda inp: (a(inp), b(inp))), {"in": 1},
                            throw_on_error=False, events=events, transaction_id="tx-events")

    def label(event: dict[str, Any]) -> tuple[str, str | None]:
        step = event.get("step")
        return event["event_type"], step["definition"]["action"] if step else None

    labels = [label(e) for e in seen if label(e)[1] != GATE]
    assert labels == [
        ("on_begin", None),
        ("on_step_begin", "a"), ("on_step_success", "a"),
        ("on_step_begin", "b"), ("on_step_failure", "b"),
        ("on_compensate_begin", None),
        ("on_step_begin", "b"), ("on_compensate_step_success", "b"),  # a has no compensation: no call
        ("on_finish", None),
    ]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in seen:
        assert (event["workflow_id"], event["transaction_id"]) == (wf_name, "tx-events")
        by_type.setdefault(event["event_type"], []).append(event)
    user_success = [e for e in by_type["on_step_success"] if e["step"]["definition"]["action"] == "a"]
    assert user_success[0]["response"] == {"a": 1}
    [failure] = by_type["on_step_failure"]
    assert [(e["action"], e["error"]["name"]) for e in failure["errors"]] == [("b", "ZeroDivisionError")]
    assert failure["step"]["invoke"] == {"state": "failed", "status": "permanent_failure"}
    [finish] = by_type["on_finish"]
    assert finish["state"] == "reverted"
    assert [e["action"] for e in finish["errors"]] == ["b"]
    assert result.transaction.state == "reverted"


class EarlyError(Exception):
    pass


async def test_an_error_recorded_before_the_wait_keeps_its_name_and_message(path: ExecutionPath, wf_name: str) -> None:
    """An ignored failure before the gate (engine A on resumed paths), then a failure after it: both are
    recorded with name and message; the run raises the first one (rebuilt as StepworkError after a resume)."""
    early_errors: list[BaseException] = []

    def early_fails(inp: Any) -> None:
        early_errors.append(EarlyError("early broke"))
        raise early_errors[-1]

    early = create_step({"name": "early", "continue_on_permanent_failure": True}, early_fails)
    late = create_step("late", lambda v: StepResponse.permanent_failure("late broke"))
    wf = path.workflow(wf_name, lambda inp: late(inp), before_gate=lambda inp: early(inp))

    result = await path.run(wf, throw_on_error=False)
    assert result.transaction.state == "reverted"
    assert [(e.action, e.error["name"], e.error["message"]) for e in result.errors] == [
        ("early", "EarlyError", "early broke"), ("late", "PermanentStepFailure", "late broke")]
    # StepFailure.exception: the object where it was raised in the engine returning the result, else None.
    assert result.errors[0].exception is (None if path.resumed else early_errors[-1])
    assert states(result)["early"] == ("failed", "permanent_failure", "reverted", "idle")

    try:
        await path.run(wf)
    except Exception as raised:  # noqa: BLE001 - compared below
        path.check_raised(raised, early_errors[-1], before_gate=True)
    else:
        raise AssertionError("the run did not raise")


async def test_retry_interval_attempts(path: ExecutionPath, wf_name: str, clock: Any) -> None:
    """retry_interval: the same attempts and outcome everywhere. In memory the run sleeps between attempts;
    stored, it returns while the step waits on a durable timer, which fires once the (fake) clock has moved."""
    path.clock = clock
    seen: list[int] = []

    def flaky(inp: Any, ctx: StepContext) -> str:
        seen.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt}")
        return f"ok after {ctx.attempt}"

    step = create_step({"name": "flaky", "max_retries": 2, "retry_interval": 0.02}, flaky)
    after = create_step("after", lambda v: v.upper())
    wf = path.workflow(wf_name, lambda inp: after(step(inp)))

    first = await path.run(wf, transaction_id="tx-interval")
    if not path.stored:
        assert (first.transaction.state, first.result) == ("done", "OK AFTER 3")
        outputs = invoke_outputs(first)
    else:
        assert first.transaction.state == "invoking"
        assert seen == [1]
        assert path.engine is not None
        for expected in ([1, 2], [1, 2, 3]):
            clock.advance(1)
            await path.engine.fire_due()
            assert seen == expected
        [execution] = await path.engine.list_workflow_executions({"workflow_id": wf_name,
                                                                  "transaction_id": "tx-interval"})
        assert execution.state == "done"
        outputs = {k: v for k, v in execution.context["data"]["invoke"].items() if k != GATE}
    assert seen == [1, 2, 3]
    assert outputs == {"flaky": "ok after 3", "after": "OK AFTER 3"}
