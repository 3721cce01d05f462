"""The spans of runs and steps, made from the engine's events (imported only when OpenTelemetry is).

One span per drive of a run (``workflow <workflow_id>``) and, under it, one per attempt of a step's
invoke (``step <name>``) or compensation (``compensate <name>``). A step's span is the current
OpenTelemetry span while the step runs: spans the step makes itself (an HTTP client's, a nested
workflow's run) nest under it. Everything open for a run is ended when this process stops driving
it (the engine's ``DRIVE_END``): a run that waits for a completion or a timer keeps nothing in
memory, and its span says ``stepwork.run.continues``; the drive that resumes it makes a new span.
"""

from __future__ import annotations

import asyncio
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from stepwork.engine.subscriptions import DRIVE_END

__all__ = ["ATTRIBUTES", "RunTracer"]

WORKFLOW_ID = "stepwork.workflow.id"
TRANSACTION_ID = "stepwork.transaction.id"
RUN_ID = "stepwork.run.id"
STATE = "stepwork.workflow.state"
RESUMED = "stepwork.run.resumed"
CONTINUES = "stepwork.run.continues"
PARENT_STEP = "stepwork.run.parent_step"
ABANDONED = "stepwork.run.abandoned"
STEP_ID = "stepwork.step.id"
ACTION = "stepwork.step.action"  # the step's name (Medusa's "action")
HANDLER = "stepwork.step.handler_type"  # invoke or compensate
ATTEMPT = "stepwork.step.attempt"
AWAITING = "stepwork.step.awaiting"
RETRIED = "stepwork.step.retried"
UNSETTLED = "stepwork.step.unsettled"
ATTRIBUTES = (WORKFLOW_ID, TRANSACTION_ID, RUN_ID, STATE, RESUMED, CONTINUES, PARENT_STEP, ABANDONED, STEP_ID,
              ACTION, HANDLER, ATTEMPT, AWAITING, RETRIED, UNSETTLED)

_STEP_END_OK = frozenset({"on_step_success", "on_compensate_step_success"})
_STEP_END_ERROR = frozenset({"on_step_failure", "on_compensate_step_failure"})


class _StepSpan:
    __slots__ = ("attempt", "handler", "span", "task", "token")

    def __init__(self, span: Span, handler: str, attempt: int, token: Token[Context],
                 task: asyncio.Task[Any] | None) -> None:
        self.span = span
        self.handler = handler
        self.attempt = attempt
        self.token = token  # the step's span made current, in the task that runs the step
        self.task = task


class _RunSpans:
    __slots__ = ("span", "steps")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.steps: dict[str, _StepSpan] = {}


class RunTracer:
    """Turns the events of every run of an engine into spans (an engine-wide subscriber)."""

    def __init__(self, tracer: Tracer, *, max_open_runs: int = 10_000) -> None:
        self._tracer = tracer
        self._runs: dict[tuple[str, str], _RunSpans] = {}
        # A bound, whatever happens: a run whose drive never reports its end (it cannot, short of a
        # bug) must not keep its spans for ever. The oldest open run is ended when it is exceeded.
        self._max_open_runs = max_open_runs

    @property
    def open_runs(self) -> int:
        """How many runs have an open span now (being driven by this process)."""
        return len(self._runs)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event_type")
        key = (str(event.get("workflow_id")), str(event.get("transaction_id")))
        if kind == DRIVE_END:
            self._drive_ended(key, event)
            return
        if kind == "on_finish":
            return  # told after the drive ended: its span is ended already
        run = self._runs.get(key)
        if run is None:
            run = self._start_run(key, resumed=kind != "on_begin")
        if kind in ("on_begin", "on_resume"):
            return
        step = event.get("step")
        step_id = step.get("id") if isinstance(step, dict) else None
        if kind == "on_step_begin" and step_id is not None:
            self._start_step(run, key, str(step_id), step)  # type: ignore[arg-type]
        elif step_id is not None and str(step_id) in run.steps and kind in _STEP_END_OK | _STEP_END_ERROR \
                | {"on_step_awaiting"}:
            self._end_step(run, str(step_id), kind, event)
        else:
            # A run-level moment (compensation begins, a timeout), or what resumed the run (a step
            # completed from outside, whose attempt's span ended with the drive that left it waiting).
            attributes = {STEP_ID: str(step_id)} if step_id is not None else {}
            run.span.add_event(str(kind), attributes)

    def close(self) -> None:
        """End every open span (instrumentation removed)."""
        for key in list(self._runs):
            self._end_run(key, {"finished": False}, abandoned=True)

    # -- runs --------------------------------------------------------------------------------------

    def _start_run(self, key: tuple[str, str], *, resumed: bool) -> _RunSpans:
        if len(self._runs) >= self._max_open_runs:
            self._end_run(next(iter(self._runs)), {"finished": False}, abandoned=True)
        # The current context is the parent: the caller's span, or the step running this nested run.
        span = self._tracer.start_span(f"workflow {key[0]}", context=otel_context.get_current(), attributes={
            WORKFLOW_ID: key[0], TRANSACTION_ID: key[1], RESUMED: resumed})
        run = self._runs[key] = _RunSpans(span)
        return run

    def _drive_ended(self, key: tuple[str, str], event: dict[str, Any]) -> None:
        if key in self._runs:
            self._end_run(key, event)

    def _end_run(self, key: tuple[str, str], event: dict[str, Any], *, abandoned: bool = False) -> None:
        run = self._runs.pop(key)
        for step_id in list(run.steps):
            self._end_step(run, step_id, None, {})
        span = run.span
        if event.get("run_id"):
            span.set_attribute(RUN_ID, str(event["run_id"]))
        if event.get("state"):
            span.set_attribute(STATE, str(event["state"]))
        if event.get("parent_step_idempotency_key"):
            span.set_attribute(PARENT_STEP, str(event["parent_step_idempotency_key"]))
        failure = event.get("failure")
        errors = event.get("errors") or []
        if abandoned:
            span.set_attribute(ABANDONED, True)
        if isinstance(failure, BaseException):
            span.record_exception(failure)
            span.set_status(Status(StatusCode.ERROR, f"The drive stopped: {type(failure).__name__}: {failure}"))
        if not event.get("finished"):
            span.set_attribute(CONTINUES, True)
        elif event.get("state") == "done" or (event.get("state") == "reverted" and not errors):
            # (Reverted without an error: cancelled, or a nested run its parent's compensation undid.)
            if failure is None:
                span.set_status(Status(StatusCode.OK))
        else:
            _record_errors(span, errors)
            first = _message(errors[0]) if errors else ""
            span.set_status(Status(StatusCode.ERROR, f'The workflow ended "{event.get("state")}"'
                                   + (f": {first}" if first else "")))
        span.end()

    # -- steps -------------------------------------------------------------------------------------

    def _start_step(self, run: _RunSpans, key: tuple[str, str], step_id: str, record: dict[str, Any]) -> None:
        compensate = record.get("compensate")
        handler = "compensate" if isinstance(compensate, dict) and compensate.get("state") == "compensating" \
            else "invoke"
        definition = record.get("definition")
        action = str(definition.get("action", step_id)) if isinstance(definition, dict) else step_id
        attempt = int(record.get("attempts") or 1)
        if step_id in run.steps:  # the attempt before failed and is retried (no event says so)
            self._end_step(run, step_id, "retried", {})
        name = f"step {action}" if handler == "invoke" else f"compensate {action}"
        span = self._tracer.start_span(name, context=trace.set_span_in_context(run.span), attributes={
            WORKFLOW_ID: key[0], TRANSACTION_ID: key[1], STEP_ID: step_id, ACTION: action, HANDLER: handler,
            ATTEMPT: attempt})
        token = otel_context.attach(trace.set_span_in_context(span))
        run.steps[step_id] = _StepSpan(span, handler, attempt, token, _current_task())

    def _end_step(self, run: _RunSpans, step_id: str, kind: str | None, event: dict[str, Any]) -> None:
        step = run.steps.pop(step_id)
        span = step.span
        if kind in _STEP_END_OK:
            span.set_status(Status(StatusCode.OK))
        elif kind in _STEP_END_ERROR:
            errors = event.get("errors") or []
            _record_errors(span, errors)
            span.set_status(Status(StatusCode.ERROR, _message(errors[0]) if errors else "The step failed."))
        elif kind == "on_step_awaiting":
            span.set_attribute(AWAITING, True)
        elif kind == "retried":
            span.set_attribute(RETRIED, True)
            span.set_status(Status(StatusCode.ERROR, f"Attempt {step.attempt} failed; the step is attempted again."))
        else:
            span.set_attribute(UNSETTLED, True)  # skipped, waiting for a retry, or the drive stopped
        if step.task is not None and step.task is _current_task():
            # Only in the task that made it current (a parallel step's task may be gone already).
            otel_context.detach(step.token)
        span.end()


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _message(error: Any) -> str:
    record = error.get("error") if isinstance(error, dict) else None
    if isinstance(record, dict):
        return f'{record.get("name", "Error")}: {record.get("message", "")}'
    return str(error)


def _record_errors(span: Span, errors: list[Any]) -> None:
    """Each recorded error as an ``exception`` event (OpenTelemetry's names for its fields)."""
    for error in errors:
        if not isinstance(error, dict):
            continue
        found = error.get("error")
        record: dict[str, Any] = found if isinstance(found, dict) else {}
        attributes = {"exception.type": str(record.get("name", "Error")),
                      "exception.message": str(record.get("message", "")),
                      ACTION: str(error.get("action")), HANDLER: str(error.get("handler_type"))}
        if record.get("stack"):
            attributes["exception.stacktrace"] = str(record["stack"])
        span.add_event("exception", attributes)
