"""The engine's log records carry the execution's ids; JsonLogFormatter prints them as JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stepwork import JsonLogFormatter, StepContext, WorkflowEngine, create_step, create_workflow, instrument
from tests.telemetry._spans import one


@pytest.fixture
def engine_log() -> Iterator[io.StringIO]:
    """What the ``stepwork`` loggers write, as JSON lines, from DEBUG up."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter(fields=["order"]))
    root = logging.getLogger("stepwork")
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _failing_workflow(wf_name: str, *, compensation_fails: bool = False) -> object:
    def undo(value: int) -> None:
        if compensation_fails:
            raise RuntimeError("refund service down")

    reserve = create_step("reserve", lambda x: x, undo)

    def charge(x: int) -> int:
        raise ValueError("card declined")

    return create_workflow(wf_name, lambda x: create_step("charge", charge)(reserve(x)))


async def test_a_failing_step_is_logged_with_the_ids_of_its_execution(
        engine: WorkflowEngine, wf_name: str, caplog: pytest.LogCaptureFixture) -> None:
    """A step that fails for good gives an INFO record of ``stepwork.engine`` whose workflow_id,
    transaction_id, run_id and step_id attributes name it; ``%(transaction_id)s`` formats it."""
    wf = _failing_workflow(wf_name)
    with caplog.at_level(logging.INFO, logger="stepwork.engine"):
        result = await engine.run(wf, 1, transaction_id="order-1", throw_on_error=False)

    assert result.transaction.state == "reverted"
    [record] = [r for r in caplog.records if getattr(r, "step_id", None) == "_root.reserve.charge"]
    assert record.levelno == logging.INFO and record.name == "stepwork.engine"
    assert (record.workflow_id, record.transaction_id, record.run_id) == (  # type: ignore[attr-defined]
        wf_name, "order-1", result.transaction.run_id)
    assert "card declined" in record.getMessage() and "compensates" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    line = logging.Formatter("%(workflow_id)s %(transaction_id)s %(step_id)s %(message)s").format(record)
    assert line.startswith(f'{wf_name} order-1 _root.reserve.charge Step "charge" of workflow')


async def test_a_failed_compensation_is_logged_with_its_step(engine: WorkflowEngine, wf_name: str,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """A compensation that fails for good (the execution ends failed) is an INFO record naming the
    compensated step; nothing reaches WARNING (an application without logging set up prints nothing)."""
    wf = _failing_workflow(wf_name, compensation_fails=True)
    with caplog.at_level(logging.INFO, logger="stepwork.engine"):
        result = await engine.run(wf, 1, transaction_id="order-2", throw_on_error=False)

    assert result.transaction.state == "failed"
    [record] = [r for r in caplog.records if getattr(r, "step_id", None) == "_root.reserve"]
    assert record.levelno == logging.INFO
    assert "refund service down" in record.getMessage() and "ends failed" in record.getMessage()
    assert "(compensate, attempt 1)" in record.getMessage()
    assert record.transaction_id == "order-2"  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_retried_attempt_is_a_debug_record(wf_name: str, caplog: pytest.LogCaptureFixture) -> None:
    """An attempt that is tried again is logged at DEBUG only (no record at INFO)."""
    attempts: list[int] = []

    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) % 2:  # the first attempt of each run fails
            raise RuntimeError("flaky")
        return x

    wf = create_workflow(wf_name, lambda x: create_step({"name": "flaky", "max_retries": 1}, flaky)(x))
    with caplog.at_level(logging.INFO, logger="stepwork.engine"):
        await wf.run(1)
    assert not [r for r in caplog.records if getattr(r, "step_id", None)]
    with caplog.at_level(logging.DEBUG, logger="stepwork.engine"):
        await wf.run(1)
    [record] = [r for r in caplog.records if getattr(r, "step_id", None) == "_root.flaky"]
    assert record.levelno == logging.DEBUG and "attempted again" in record.getMessage()


async def test_json_lines_carry_the_ids_and_the_current_span(engine: WorkflowEngine, wf_name: str,
                                                             engine_log: io.StringIO, provider: TracerProvider,
                                                             exporter: InMemorySpanExporter) -> None:
    """Each record is one JSON object per line: the engine's with its ids and exception, and a step's
    own log line with the trace and span ids of that step's span (and the ``fields`` asked for)."""
    def charge(x: int, ctx: StepContext) -> int:
        ctx.logger.info("charging %s", x, extra={"order": "o-9"})
        raise ValueError("card declined")

    wf = create_workflow(wf_name, lambda x: create_step("charge", charge)(x))
    instrument(engine, tracer_provider=provider)

    result = await engine.run(wf, 4, transaction_id="order-3", throw_on_error=False)

    lines = _lines(engine_log)
    [own] = [line for line in lines if line["message"] == "charging 4"]
    step_span = one(exporter, "step charge")
    assert step_span.context is not None
    assert own["trace_id"] == format(step_span.context.trace_id, "032x")
    assert own["span_id"] == format(step_span.context.span_id, "016x")
    assert own["order"] == "o-9" and own["level"] == "INFO" and own["logger"] == f"stepwork.workflow.{wf_name}"
    [failure] = [line for line in lines if line.get("step_id") == "_root.charge" and line is not own]
    assert {k: failure[k] for k in ("workflow_id", "transaction_id", "run_id", "logger")} == {
        "workflow_id": wf_name, "transaction_id": "order-3", "run_id": result.transaction.run_id,
        "logger": "stepwork.engine"}
    assert "ValueError: card declined" in str(failure["exception"])
    assert str(failure["time"]).endswith("+00:00")


def test_json_lines_of_a_plain_record_have_only_what_it_has() -> None:
    """A record without ids gives time, level, logger and message only (no null ids)."""
    record = logging.LogRecord("app", logging.WARNING, __file__, 1, "low stock: %s", ("sku-1",), None)
    assert set(json.loads(JsonLogFormatter().format(record))) == {"time", "level", "logger", "message"}
    assert json.loads(JsonLogFormatter().format(record))["message"] == "low stock: sku-1"
