"""Per-run ``events`` callbacks (SPEC §2.1, §7; medusa-behaviour §16.1)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from stepwork import StepworkError, create_step, create_workflow
from stepwork.engine.run_events import EVENT_TYPES

ALL_EVENTS = ("on_begin", "on_resume", "on_step_begin", "on_step_success", "on_step_failure", "on_step_awaiting",
              "on_compensate_begin", "on_compensate_step_success", "on_compensate_step_failure", "on_timeout",
              "on_finish")


def _recorder():
    """A handler for every event type, appending each event dict to a list."""
    seen: list[dict] = []
    return seen, dict.fromkeys(ALL_EVENTS, seen.append)


def _label(event):
    step = event.get("step")
    return (event["event_type"], step["id"] if step else None)


def test_event_type_names():
    """The event types are exactly the eleven names of SPEC §7."""
    assert set(ALL_EVENTS) == EVENT_TYPES


async def test_event_order_for_a_ok_then_b_failing(wf_name):
    """a ok, b fails (b has compensation, a none): Medusa's observed order, on_finish with state reverted."""
    seen, events = _recorder()
    a = create_step("a", lambda: {"a": 1})
    b = create_step("b", lambda: 1 / 0, lambda ci: "b undone")
    result = await create_workflow(wf_name, lambda inp: (a(), b())).run(
        {"in": 1}, throw_on_error=False, events=events, transaction_id="tx-events")
    assert [_label(e) for e in seen] == [
        ("on_begin", None),
        ("on_step_begin", "_root.a"),
        ("on_step_success", "_root.a"),
        ("on_step_begin", "_root.a.b"),
        ("on_step_failure", "_root.a.b"),
        ("on_compensate_begin", None),
        ("on_step_begin", "_root.a.b"),          # the compensation call
        ("on_compensate_step_success", "_root.a.b"),
        ("on_finish", None),
    ]
    for event in seen:
        assert event["workflow_id"] == wf_name
        assert event["transaction_id"] == "tx-events"
    by_type = {}
    for event in seen:
        by_type.setdefault(event["event_type"], []).append(event)
    assert by_type["on_step_success"][0]["response"] == {"a": 1}
    assert by_type["on_step_success"][0]["step"]["invoke"] == {"state": "done", "status": "ok"}
    [failure] = by_type["on_step_failure"]
    assert [(e["action"], e["handler_type"]) for e in failure["errors"]] == [("b", "invoke")]
    assert failure["errors"][0]["error"]["name"] == "ZeroDivisionError"
    assert failure["step"]["invoke"] == {"state": "failed", "status": "permanent_failure"}
    compensation_begin = by_type["on_step_begin"][2]
    assert compensation_begin["step"]["compensate"]["state"] == "compensating"
    assert by_type["on_compensate_step_success"][0]["response"] == "b undone"
    [finish] = by_type["on_finish"]
    assert finish["state"] == "reverted"
    assert [e["action"] for e in finish["errors"]] == ["b"]
    assert result.transaction.state == "reverted"


async def test_successful_run_events_and_finish_result(wf_name):
    """A successful run emits begin, step begin/success per step and on_finish(state done, result)."""
    seen, events = _recorder()
    a = create_step("a", lambda inp: inp * 2)
    result = await create_workflow(wf_name, lambda inp: a(inp)).run(21, events=events)
    assert [_label(e) for e in seen] == [("on_begin", None), ("on_step_begin", "_root.a"),
                                         ("on_step_success", "_root.a"), ("on_finish", None)]
    assert seen[-1]["state"] == "done"
    assert seen[-1]["result"] == 42
    assert seen[-1]["errors"] == []
    assert result.result == 42


async def test_failed_compensation_emits_compensate_step_failure(wf_name):
    """A compensation failing permanently emits on_compensate_step_failure with a compensate error."""
    seen, events = _recorder()
    a = create_step("a", lambda: 1, lambda ci: 1 / 0)
    b = create_step("b", lambda: 1 / 0)
    await create_workflow(wf_name, lambda inp: (a(), b())).run(throw_on_error=False, events=events)
    [failure] = [e for e in seen if e["event_type"] == "on_compensate_step_failure"]
    assert failure["step"]["id"] == "_root.a"
    assert [(e["action"], e["handler_type"]) for e in failure["errors"]] == [("a", "compensate")]
    assert seen[-1]["event_type"] == "on_finish"
    assert seen[-1]["state"] == "failed"


async def test_workflow_timeout_emits_on_timeout_once(wf_name):
    """A workflow timeout emits on_timeout once, before the compensation begins."""
    seen, events = _recorder()

    async def hang(inp, ctx):
        await asyncio.Event().wait()

    h1 = create_step("h1", hang)
    wf = create_workflow({"name": wf_name, "timeout": 0.03}, lambda inp: h1())
    await wf.run(throw_on_error=False, events=events)
    types = [e["event_type"] for e in seen]
    assert types.count("on_timeout") == 1
    assert types.index("on_timeout") < types.index("on_compensate_begin")


async def test_async_handlers_are_awaited(wf_name):
    """Coroutine handlers are awaited in order before the run returns."""
    seen = []

    async def handler(event):
        await asyncio.sleep(0)
        seen.append(event["event_type"])

    a = create_step("a", lambda: 1)
    await create_workflow(wf_name, lambda inp: a()).run(
        events={"on_begin": handler, "on_step_success": handler, "on_finish": handler})
    assert seen == ["on_begin", "on_step_success", "on_finish"]


async def test_a_raising_handler_is_logged_and_ignored(wf_name, caplog):
    """An exception from a handler is logged and does not affect the run or later handlers."""
    seen = []

    def bad(event):
        raise RuntimeError("handler broke")

    a = create_step("a", lambda: "A")
    with caplog.at_level(logging.ERROR):
        result = await create_workflow(wf_name, lambda inp: a()).run(
            events={"on_step_success": bad, "on_finish": lambda e: seen.append(e["state"])})
    assert result.result == "A"
    assert result.transaction.state == "done"
    assert seen == ["done"]
    assert any("on_step_success" in r.getMessage() and r.exc_info and "handler broke" in str(r.exc_info[1])
               for r in caplog.records)


async def test_unknown_event_name_raises_before_running(wf_name):
    """An unknown event name raises StepworkError (invalid_data) and no step runs."""
    ran = []
    a = create_step("a", lambda: ran.append("a"))
    wf = create_workflow(wf_name, lambda inp: a())
    with pytest.raises(StepworkError) as info:
        await wf.run(events={"onStepSuccess": lambda e: None})
    assert info.value.type == "invalid_data"
    assert "onStepSuccess" in str(info.value)
    with pytest.raises(StepworkError):
        await wf.run(events={"on_step_success": "not callable"})
    assert ran == []
