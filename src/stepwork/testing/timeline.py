"""``timeline``: what a run did, step by step, in a form tests read easily."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stepwork.engine.records import WorkflowExecution
from stepwork.engine.results import WorkflowResult
from stepwork.errors import StepworkError
from stepwork.testing.patching import Recorder, current_recorder

__all__ = ["StepView", "Timeline", "timeline"]

_NOT_INVOKED = ("not_started", "skipped", "skipped_failure")


@dataclass(frozen=True)
class StepView:
    """One step of a timeline: states, attempts, output, error and (when recorded) input."""

    name: str
    invoke_state: str
    compensate_state: str
    attempts: int
    input: Any
    output: Any
    error: dict[str, Any] | None
    compensation_error: dict[str, Any] | None
    compensation_input: Any
    compensated: bool


class Timeline:
    """``invoked`` and ``compensated`` (step names in the order they ran), ``failed``, ``skipped``,
    and :meth:`step` for one step's details."""

    def __init__(self, steps: list[StepView], compensation_order: list[str]) -> None:
        self._steps = {s.name: s for s in steps}
        self.invoked = [s.name for s in steps if s.invoke_state not in _NOT_INVOKED]
        self.compensated = [name for name in compensation_order if self._steps[name].compensated]
        self.failed = [s.name for s in steps if s.invoke_state in ("failed", "timeout")]
        self.skipped = [s.name for s in steps if s.invoke_state in ("skipped", "skipped_failure")]

    def step(self, name: str) -> StepView:
        """The view of step ``name``; ``StepworkError`` (``not_found``) listing the steps otherwise."""
        view = self._steps.get(name)
        if view is None:
            raise StepworkError(StepworkError.Types.NOT_FOUND,
                                f'The timeline has no step "{name}". Its steps: {", ".join(self._steps)}.')
        return view

    def __repr__(self) -> str:
        return f"Timeline(invoked={self.invoked}, compensated={self.compensated}, failed={self.failed})"


def timeline(result_or_execution: WorkflowResult[Any] | WorkflowExecution, *,
             recorder: Recorder | None = None) -> Timeline:
    """The timeline of a run's result or of a stored execution.

    Inputs are known for runs started while a :func:`~stepwork.testing.recording` (or the
    ``stepwork_engine`` fixture) was active; otherwise ``step(name).input`` is ``None``.
    """
    if isinstance(result_or_execution, WorkflowResult):
        info = result_or_execution.transaction
        execution, context = info.execution, info.context
    elif isinstance(result_or_execution, WorkflowExecution):
        execution, context = result_or_execution.execution or {}, result_or_execution.context or {}
    else:
        raise StepworkError(StepworkError.Types.INVALID_DATA,
                            f"timeline() takes a WorkflowResult or a WorkflowExecution, got {result_or_execution!r}.")
    rec = recorder or current_recorder()
    workflow_id = execution.get("modelId", "")
    transaction_id = execution.get("transactionId", "")
    invoke_out = (context.get("data") or {}).get("invoke") or {}
    errors = context.get("errors") or []
    records = [(sid, r) for sid, r in (execution.get("steps") or {}).items() if sid != "_root"]
    views: list[StepView] = []
    depth_of: dict[str, int] = {}
    for _sid, r in records:
        name = r.get("definition", {}).get("action", "")
        calls = rec.of(workflow_id, transaction_id, name) if rec is not None else []
        invokes = [c for c in calls if c.action == "invoke"]
        comps = [c for c in calls if c.action == "compensate"]
        comp = r.get("compensate", {})
        views.append(StepView(
            name=name,
            invoke_state=r.get("invoke", {}).get("state", "not_started"),
            compensate_state=comp.get("state", "dormant"),
            attempts=len(invokes) if invokes else r.get("invokeAttempts", r.get("attempts", 0)),
            input=invokes[0].input if invokes else None,
            output=invoke_out.get(name),
            error=next((e["error"] for e in errors if e.get("action") == name and e.get("handler_type") == "invoke"),
                       None),
            compensation_error=next((e["error"] for e in errors if e.get("action") == name
                                     and e.get("handler_type") == "compensate"), None),
            compensation_input=comps[0].input if comps else None,
            # reverted/idle is a step without a compensation function: nothing was called.
            compensated=comp.get("state") in ("reverted", "failed") and comp.get("status") != "idle",
        ))
        depth_of[name] = int(r.get("depth", 0))
    # Compensation runs newest stage first; steps of one stage (parallel) in definition order.
    order = sorted((v.name for v in views), key=lambda n: -depth_of[n])
    return Timeline(views, order)
