"""StepContext: ids, keys, attempts, metadata, run context and container (SPEC §1.3, §2.1)."""

from __future__ import annotations

import logging
import re
from typing import Any

from stepwork import Container, StepContext, create_step, create_workflow

_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def _snapshot(ctx: StepContext) -> dict[str, Any]:
    return {
        "workflow_id": ctx.workflow_id,
        "step_name": ctx.step_name,
        "action": ctx.action,
        "idempotency_key": ctx.idempotency_key,
        "attempt": ctx.attempt,
        "metadata": ctx.metadata,
        "context": dict(ctx.context),
        "transaction_id": ctx.transaction_id,
        "run_id": ctx.run_id,
        "event_group_id": ctx.event_group_id,
        "parent_key": ctx.parent_step_idempotency_key,
        "container": ctx.container,
    }


def _recording_workflow(name: str, seen: list[dict[str, Any]]) -> Any:
    s = create_step("record", lambda _, ctx: seen.append(_snapshot(ctx)))
    return create_workflow(name, lambda inp: s())


async def test_identity_attributes_and_idempotency_key(wf_name: str) -> None:
    """workflow_id, step_name, action and idempotency_key "{wf}:{txn}:{step}:invoke" describe the call."""
    seen: list[dict[str, Any]] = []
    wf = _recording_workflow(wf_name, seen)

    result = await wf.run(transaction_id="txn-1")

    (snap,) = seen
    assert snap["workflow_id"] == wf_name
    assert snap["step_name"] == "record"
    assert snap["action"] == "invoke"
    assert snap["transaction_id"] == "txn-1"
    assert snap["idempotency_key"] == f"{wf_name}:txn-1:record:invoke"
    assert snap["run_id"] == result.transaction.run_id
    assert _ULID.match(snap["run_id"])
    assert snap["parent_key"] is None


async def test_compensation_context_has_compensate_key_and_attempt_restarting_at_one(wf_name: str) -> None:
    """In compensation, action is "compensate", the key ends ":compensate" and attempt restarts at 1."""
    seen: list[dict[str, Any]] = []

    def flaky(_: Any, ctx: StepContext) -> str:
        seen.append(_snapshot(ctx))
        if ctx.attempt < 3:
            raise RuntimeError("retry me")
        return "ok"

    def comp(_: Any, ctx: StepContext) -> None:
        seen.append(_snapshot(ctx))
        if ctx.attempt == 1:
            raise RuntimeError("retry compensation")

    def fail(_: Any) -> None:
        raise RuntimeError("later failure")

    s = create_step({"name": "s", "max_retries": 2}, flaky, comp)
    f = create_step("f", fail)

    def composer(inp: Any) -> None:
        s()
        f()

    wf = create_workflow(wf_name, composer)
    await wf.run(transaction_id="t2", throw_on_error=False)

    assert [(x["action"], x["attempt"]) for x in seen] == [
        ("invoke", 1), ("invoke", 2), ("invoke", 3), ("compensate", 1), ("compensate", 2)]
    assert {x["idempotency_key"] for x in seen if x["action"] == "invoke"} == {f"{wf_name}:t2:s:invoke"}
    assert {x["idempotency_key"] for x in seen if x["action"] == "compensate"} == {f"{wf_name}:t2:s:compensate"}


async def test_metadata_keys(wf_name: str) -> None:
    """metadata holds model_id, idempotency_key, action, action_type, attempt and timestamp."""
    seen: list[dict[str, Any]] = []
    wf = _recording_workflow(wf_name, seen)

    await wf.run(transaction_id="t3")

    meta = seen[0]["metadata"]
    assert set(meta) == {"model_id", "idempotency_key", "action", "action_type", "attempt", "timestamp"}
    assert meta["model_id"] == wf_name
    assert meta["idempotency_key"] == f"{wf_name}:t3:record:invoke"
    assert meta["action"] == "record"
    assert meta["action_type"] == "invoke"
    assert meta["attempt"] == 1
    assert isinstance(meta["timestamp"], (int, float))


async def test_context_has_caller_keys_transaction_id_and_event_group(wf_name: str) -> None:
    """ctx.context holds the caller's keys plus transaction_id and event_group_id; the caller's dict is untouched."""
    seen: list[dict[str, Any]] = []
    wf = _recording_workflow(wf_name, seen)
    caller_context = {"tenant": "acme", "locale": "fr"}

    await wf.run(context=caller_context, transaction_id="t4")

    ctx = seen[0]["context"]
    assert ctx["tenant"] == "acme"
    assert ctx["locale"] == "fr"
    assert ctx["transaction_id"] == "t4"
    assert ctx["event_group_id"] == seen[0]["event_group_id"]
    assert caller_context == {"tenant": "acme", "locale": "fr"}


async def test_event_group_id_taken_from_context(wf_name: str) -> None:
    """An event_group_id given in the run context is the run's event group."""
    seen: list[dict[str, Any]] = []
    wf = _recording_workflow(wf_name, seen)

    await wf.run(context={"event_group_id": "eg-1"})

    assert seen[0]["event_group_id"] == "eg-1"
    assert seen[0]["context"]["event_group_id"] == "eg-1"


async def test_event_group_id_generated_per_run(wf_name: str) -> None:
    """Without one in the context, each run gets its own generated event group id, shared by its steps."""
    seen: list[dict[str, Any]] = []
    a = create_step("a", lambda _, ctx: seen.append(_snapshot(ctx)))
    b = create_step("b", lambda _, ctx: seen.append(_snapshot(ctx)))

    def composer(inp: Any) -> None:
        a()
        b()

    wf = create_workflow(wf_name, composer)
    await wf.run()
    await wf.run(transaction_id="explicit")

    groups = [s["event_group_id"] for s in seen]
    assert groups[0] == groups[1]
    assert groups[2] == groups[3]
    assert groups[0] != groups[2]
    assert all(isinstance(g, str) and g for g in groups)


async def test_container_passed_through_both_run_forms(wf_name: str) -> None:
    """ctx.container is the container given to wf(container).run() or wf.run(container=...)."""
    seen: list[dict[str, Any]] = []
    wf = _recording_workflow(wf_name, seen)
    c1 = Container({"service": "one"})
    c2 = Container({"service": "two"})

    await wf(c1).run()
    await wf.run(container=c2)

    assert seen[0]["container"] is c1
    assert seen[1]["container"] is c2
    assert seen[0]["container"].resolve("service") == "one"


async def test_container_defaults_to_an_empty_container(wf_name: str) -> None:
    """Without a container, ctx.container is an (empty) Container."""
    seen: list[dict[str, Any]] = []
    wf = _recording_workflow(wf_name, seen)

    await wf.run()

    assert isinstance(seen[0]["container"], Container)


async def test_default_transaction_id_is_auto_ulid(wf_name: str) -> None:
    """The default transaction id is "auto-" + a ULID (31 characters), new for each run."""
    seen: list[dict[str, Any]] = []
    wf = _recording_workflow(wf_name, seen)

    first = await wf.run()
    second = await wf.run()

    tid = seen[0]["transaction_id"]
    assert tid.startswith("auto-")
    assert len(tid) == 31
    assert _ULID.match(tid[len("auto-"):])
    assert first.transaction.transaction_id == tid
    assert second.transaction.transaction_id != tid
    assert first.acknowledgement.transaction_id == tid


async def test_explicit_transaction_id_is_honoured(wf_name: str) -> None:
    """An explicit transaction_id is the run's transaction id, seen by steps and in the result."""
    seen: list[dict[str, Any]] = []
    wf = _recording_workflow(wf_name, seen)

    result = await wf.run(transaction_id="order-123")

    assert seen[0]["transaction_id"] == "order-123"
    assert result.transaction.transaction_id == "order-123"
    assert result.acknowledgement.transaction_id == "order-123"
    assert result.acknowledgement.workflow_id == wf_name


async def test_logger_is_a_logger(wf_name: str) -> None:
    """ctx.logger is a logging.Logger; the container's "logger" is used when one is registered."""
    loggers: list[Any] = []
    s = create_step("s", lambda _, ctx: loggers.append(ctx.logger))
    wf = create_workflow(wf_name, lambda inp: s())
    mine = logging.getLogger(f"test.{wf_name}")

    await wf.run()
    await wf.run(container=Container({"logger": mine}))

    assert isinstance(loggers[0], logging.Logger)
    assert loggers[1] is mine
