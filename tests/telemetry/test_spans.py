"""Spans of runs and steps: names, nesting, attributes and status, in memory and stored."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from stepwork import (
    StepContext,
    StepResponse,
    StepworkError,
    WorkflowEngine,
    create_step,
    create_workflow,
    instrument,
    parallelize,
)
from tests.conftest import FakeClock
from tests.telemetry._spans import is_child, named, one, until

STORED = pytest.mark.parametrize("stored", [False, True], ids=["memory", "stored"])


def _name(wf_name: str, stored: bool) -> dict[str, Any]:
    return {"name": wf_name, "store": stored}


@STORED
async def test_a_done_run_has_a_span_with_a_child_per_step(engine: WorkflowEngine, wf_name: str, stored: bool,
                                                           provider: TracerProvider,
                                                           exporter: InMemorySpanExporter) -> None:
    """``workflow <id>`` holds ``step <name>`` per step; ids, final state and OK status are on them."""
    a = create_step("a", lambda x: x + 1)
    b = create_step("b", lambda x: x * 2)
    wf = create_workflow(_name(wf_name, stored), lambda x: b(a(x)))
    instrumentation = instrument(engine, tracer_provider=provider)

    result = await engine.run(wf, 1, transaction_id="tx-1")

    assert result.result == 4
    run = one(exporter, f"workflow {wf_name}")
    step_a, step_b = one(exporter, "step a"), one(exporter, "step b")
    assert run.parent is None
    assert is_child(step_a, run) and is_child(step_b, run)
    assert run.attributes is not None and dict(run.attributes) == {
        "stepwork.workflow.id": wf_name, "stepwork.transaction.id": "tx-1",
        "stepwork.run.id": result.transaction.run_id, "stepwork.workflow.state": "done", "stepwork.run.resumed": False}
    assert run.status.status_code is StatusCode.OK
    assert step_a.attributes is not None and dict(step_a.attributes) == {
        "stepwork.workflow.id": wf_name, "stepwork.transaction.id": "tx-1", "stepwork.step.id": "_root.a",
        "stepwork.step.action": "a", "stepwork.step.handler_type": "invoke", "stepwork.step.attempt": 1}
    assert step_b.status.status_code is StatusCode.OK
    assert step_a.end_time is not None and step_b.start_time is not None and step_a.end_time <= step_b.start_time
    assert instrumentation.open_runs == 0


@STORED
async def test_a_failing_run_records_the_error_and_its_compensations(engine: WorkflowEngine, wf_name: str,
                                                                    stored: bool, provider: TracerProvider,
                                                                    exporter: InMemorySpanExporter) -> None:
    """The failing step's span is ERROR with the exception; each compensation has its span; the run
    span ends ERROR in state reverted."""
    undone: list[int] = []
    a = create_step("a", lambda x: StepResponse(x, x), lambda c: undone.append(c))

    def charge(x: int) -> int:
        raise ValueError("card declined")

    b = create_step("charge", charge)
    wf = create_workflow(_name(wf_name, stored), lambda x: b(a(x)))
    instrument(engine, tracer_provider=provider)

    result = await engine.run(wf, 7, throw_on_error=False)

    assert result.transaction.state == "reverted" and undone == [7]
    run = one(exporter, f"workflow {wf_name}")
    failed = one(exporter, "step charge")
    compensation = one(exporter, "compensate a")
    assert is_child(failed, run) and is_child(compensation, run) and is_child(one(exporter, "step a"), run)
    assert failed.status.status_code is StatusCode.ERROR
    assert "card declined" in (failed.status.description or "")
    [exception] = [e for e in failed.events if e.name == "exception"]
    assert exception.attributes is not None
    assert exception.attributes["exception.type"] == "ValueError"
    assert exception.attributes["exception.message"] == "card declined"
    assert compensation.attributes is not None and compensation.attributes["stepwork.step.handler_type"] == "compensate"
    assert compensation.status.status_code is StatusCode.OK
    assert failed.end_time is not None and compensation.start_time is not None
    assert failed.end_time <= compensation.start_time
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes is not None and run.attributes["stepwork.workflow.state"] == "reverted"
    assert "compensate_begin" in [e.name.removeprefix("on_") for e in run.events]
    assert any(e.name == "exception" for e in run.events)


@STORED
async def test_parallel_steps_each_have_their_span_current_while_they_run(
        engine: WorkflowEngine, wf_name: str, stored: bool, provider: TracerProvider,
        exporter: InMemorySpanExporter) -> None:
    """Steps run side by side get sibling spans under the run; a span a step makes nests under that
    step's span, not under its sibling's."""
    user_tracer = provider.get_tracer("user-code")
    both_started = asyncio.Event()
    started: list[str] = []

    def side(name: str) -> Any:
        async def fn(x: int) -> int:
            started.append(name)
            if len(started) == 2:
                both_started.set()
            await both_started.wait()  # both run at once
            with user_tracer.start_as_current_span(f"inside {name}"):
                await asyncio.sleep(0)
            return x
        return create_step(name, fn)

    left, right = side("left"), side("right")
    wf = create_workflow(_name(wf_name, stored), lambda x: parallelize(left(x), right(x)))
    instrument(engine, tracer_provider=provider)

    result = await engine.run(wf, 3)

    assert result.result == (3, 3) or result.result == [3, 3]
    run = one(exporter, f"workflow {wf_name}")
    for name in ("left", "right"):
        step = one(exporter, f"step {name}")
        assert is_child(step, run)
        assert is_child(one(exporter, f"inside {name}"), step)
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing stays current after the run


@STORED
async def test_a_nested_workflow_run_nests_under_the_step_that_runs_it(engine: WorkflowEngine, wf_name: str,
                                                                       stored: bool, provider: TracerProvider,
                                                                       exporter: InMemorySpanExporter) -> None:
    """The child's run span is a child of its parent's step span, and the child's steps under it."""
    inner = create_step("inner", lambda x: x + 10)
    child = create_workflow({"name": f"{wf_name}-child", "store": stored}, lambda x: inner(x))
    outer = create_step("outer", lambda x: x)
    wf = create_workflow(_name(wf_name, stored), lambda x: child.run_as_step(outer(x)))
    instrument(engine, tracer_provider=provider)

    result = await engine.run(wf, 1)

    assert result.result == 11
    parent_run = one(exporter, f"workflow {wf_name}")
    child_run = one(exporter, f"workflow {wf_name}-child")
    [nested_step] = [s for s in exporter.get_finished_spans() if s.name.startswith("step ")
                     and s.attributes is not None and s.attributes["stepwork.workflow.id"] == wf_name
                     and s.attributes["stepwork.step.action"] != "outer"]
    assert is_child(nested_step, parent_run)
    assert is_child(child_run, nested_step)
    assert is_child(one(exporter, "step inner"), child_run)
    assert child_run.attributes is not None
    assert child_run.attributes["stepwork.workflow.state"] == "done"
    assert str(child_run.attributes["stepwork.run.parent_step"]).startswith(f"{wf_name}:")


@STORED
async def test_a_nested_workflow_undone_by_its_parent_nests_under_the_compensation(
        engine: WorkflowEngine, wf_name: str, stored: bool, provider: TracerProvider,
        exporter: InMemorySpanExporter) -> None:
    """When the parent compensates, the child's revert is a run span under the parent's
    ``compensate`` span, holding the child's own compensations; reverted on request, it is OK."""
    inner = create_step("inner", lambda x: x, lambda c: None)
    child = create_workflow({"name": f"{wf_name}-child", "store": stored}, lambda x: inner(x))

    def late(x: int) -> None:
        raise ValueError("late failure")

    wf = create_workflow(_name(wf_name, stored), lambda x: create_step("late", late)(child.run_as_step(x)))
    instrument(engine, tracer_provider=provider)

    result = await engine.run(wf, 1, throw_on_error=False)

    assert result.transaction.state == "reverted"
    [compensate_nested] = [s for s in exporter.get_finished_spans() if s.name.startswith("compensate ")
                           and s.attributes is not None and s.attributes["stepwork.workflow.id"] == wf_name]
    done_run, revert_run = named(exporter, f"workflow {wf_name}-child")
    assert is_child(revert_run, compensate_nested)
    assert is_child(one(exporter, "compensate inner"), revert_run)
    assert revert_run.attributes is not None and revert_run.attributes["stepwork.workflow.state"] == "reverted"
    assert revert_run.status.status_code is StatusCode.OK
    assert one(exporter, f"workflow {wf_name}").status.status_code is StatusCode.ERROR


async def test_a_retried_attempt_has_its_own_span(engine: WorkflowEngine, wf_name: str, provider: TracerProvider,
                                                  exporter: InMemorySpanExporter) -> None:
    """Each attempt of a step is a span with its attempt number; a failed attempt that is retried is
    ERROR and says ``stepwork.step.retried``."""
    calls: list[int] = []

    def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return x

    wf = create_workflow(wf_name, lambda x: create_step({"name": "flaky", "max_retries": 1}, flaky)(x))
    instrument(engine, tracer_provider=provider)

    assert (await engine.run(wf, 5)).result == 5

    first, second = named(exporter, "step flaky")
    assert first.attributes is not None and second.attributes is not None
    assert (first.attributes["stepwork.step.attempt"], second.attributes["stepwork.step.attempt"]) == (1, 2)
    assert first.attributes["stepwork.step.retried"] is True
    assert first.status.status_code is StatusCode.ERROR
    assert second.status.status_code is StatusCode.OK


async def test_a_run_that_waits_leaves_no_open_span_and_its_resumption_gets_one(
        engine: WorkflowEngine, wf_name: str, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    """A stored run stopping to wait for an async step ends its span (``stepwork.run.continues``);
    the completion's drive makes a new span (``stepwork.run.resumed``) that finishes the run."""
    wait = create_step({"name": "wait", "async": True}, lambda value: None)
    after = create_step("after", lambda value: {"got": value})
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: after(wait(inp)))
    instrumentation = instrument(engine, tracer_provider=provider)

    first = await engine.run(wf, {"a": 1}, transaction_id="tx")

    assert first.transaction.state == "invoking"
    assert instrumentation.open_runs == 0
    [waiting_run] = named(exporter, f"workflow {wf_name}")
    assert waiting_run.attributes is not None
    assert waiting_run.attributes["stepwork.run.continues"] is True
    assert waiting_run.attributes["stepwork.workflow.state"] == "invoking"
    assert one(exporter, "step wait").attributes == {
        "stepwork.workflow.id": wf_name, "stepwork.transaction.id": "tx", "stepwork.step.id": "_root.wait",
        "stepwork.step.action": "wait", "stepwork.step.handler_type": "invoke", "stepwork.step.attempt": 1,
        "stepwork.step.awaiting": True}

    done = await engine.set_step_success(f"{wf_name}:tx:wait:invoke", "paid")

    assert done.transaction.state == "done"
    assert instrumentation.open_runs == 0
    _, resumed = named(exporter, f"workflow {wf_name}")
    assert resumed.attributes is not None
    assert resumed.attributes["stepwork.run.resumed"] is True
    assert resumed.attributes["stepwork.workflow.state"] == "done"
    assert "stepwork.run.continues" not in resumed.attributes
    assert is_child(one(exporter, "step after"), resumed)
    assert "on_step_success" in [e.name for e in resumed.events]  # what resumed it


async def test_a_durable_retry_ends_the_drive_and_the_timer_starts_a_new_span(
        engine: WorkflowEngine, wf_name: str, clock: FakeClock, provider: TracerProvider,
        exporter: InMemorySpanExporter) -> None:
    """A stored step whose retry waits on a durable timer: the failed attempt's span ends with the
    drive (``stepwork.step.unsettled``), the run's span says it continues; the timer's drive, in the
    engine's background loop, makes a new root span holding attempt 2."""
    def flaky(value: int, ctx: StepContext) -> str:
        if ctx.attempt < 2:
            raise RuntimeError("not yet")
        return "ok"

    s = create_step({"name": "flaky", "max_retries": 1, "retry_interval": 3600}, flaky)
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: s(inp))
    instrumentation = instrument(engine, tracer_provider=provider)

    first = await engine.run(wf, 1, transaction_id="tx")

    assert first.transaction.state == "invoking"
    [waiting] = named(exporter, f"workflow {wf_name}")
    [attempt_1] = named(exporter, "step flaky")
    assert waiting.attributes is not None and waiting.attributes["stepwork.run.continues"] is True
    assert attempt_1.attributes is not None and attempt_1.attributes["stepwork.step.unsettled"] is True
    assert instrumentation.open_runs == 0

    clock.advance(3601)
    await until(lambda: len(named(exporter, f"workflow {wf_name}")) == 2)

    resumed = named(exporter, f"workflow {wf_name}")[1]
    attempt_2 = named(exporter, "step flaky")[1]
    assert resumed.parent is None and is_child(attempt_2, resumed)
    assert attempt_2.attributes is not None and attempt_2.attributes["stepwork.step.attempt"] == 2
    assert attempt_2.status.status_code is StatusCode.OK
    assert resumed.attributes is not None and resumed.attributes["stepwork.workflow.state"] == "done"
    assert resumed.attributes["stepwork.run.resumed"] is True


async def test_uninstrument_stops_the_spans_and_instrumenting_again_replaces(
        engine: WorkflowEngine, wf_name: str, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    """Instrumenting twice makes one span per run, not two; after uninstrument() there are none."""
    wf = create_workflow(wf_name, lambda x: create_step("only", lambda v: v)(x))
    instrument(engine, tracer_provider=provider)
    again = instrument(engine, tracer_provider=provider)
    await engine.run(wf, 1)
    assert len(named(exporter, f"workflow {wf_name}")) == 1

    again.uninstrument()
    await engine.run(wf, 2)

    assert len(named(exporter, f"workflow {wf_name}")) == 1


def test_without_opentelemetry_instrument_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """With OpenTelemetry missing, instrument() raises a StepworkError naming the extra to install."""
    monkeypatch.setitem(__import__("sys").modules, "opentelemetry", None)  # what an absent package looks like
    with pytest.raises(StepworkError) as raised:
        instrument(WorkflowEngine("sqlite://"))
    assert raised.value.type == StepworkError.Types.NOT_FOUND
    assert "pip install 'stepwork[otel]'" in str(raised.value)
