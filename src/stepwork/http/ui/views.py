"""What the admin page shows of a stored execution, computed from its record (``to_dict()``).

Pure functions over the JSON record the API serves (``execution.steps`` with ``depth``, ``next``
and ``definition``, ``context.data`` and ``context.errors``): the progress, the stages of the step
graph, and one row per step. The templates only lay these out.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FINISHED", "STATES", "Progress", "StepView", "duration_text", "pretty", "progress", "stages",
           "steps_of", "time_text", "tone"]

STATES = ("not_started", "invoking", "waiting_to_compensate", "compensating", "done", "reverted", "failed")
FINISHED = frozenset({"done", "reverted", "failed"})
_SETTLED = frozenset({"done", "skipped", "skipped_failure", "failed", "timeout"})
_TONES = {
    "done": "ok", "reverted": "warn", "failed": "bad", "timeout": "bad", "invoking": "active",
    "compensating": "warn", "waiting_to_compensate": "warn", "skipped": "muted", "skipped_failure": "muted",
    "not_started": "muted", "dormant": "muted",
}


def tone(state: str | None) -> str:
    """The colour family of a transaction or step state (a CSS class suffix)."""
    return _TONES.get(state or "", "muted")


def pretty(value: Any) -> str:
    """``value`` as indented JSON (the templates escape it); too deeply nested to indent (a stored
    definition of a thousand steps in a row), compact."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except RecursionError:
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except RecursionError:
            return "(too deeply nested to show; the API's JSON has it)"


def _parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    if isinstance(value, str) and value:
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def time_text(value: Any) -> str:
    """A stored time (ISO string or epoch milliseconds) as ``2026-12-05 09:07:07 UTC``; ``""`` if none."""
    when = _parse_time(value)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if when else ""


def duration_text(seconds: float | None) -> str:
    """``12 ms``, ``1.4 s``, ``3 min 2 s``, ``2 h 5 min``; ``""`` for ``None``."""
    if seconds is None or seconds < 0:
        return ""
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


@dataclass(frozen=True)
class Progress:
    """How many of an execution's steps have settled their invoke (done, skipped, failed...)."""

    done: int
    total: int

    @property
    def text(self) -> str:
        """``"n of m steps"``."""
        return f"{self.done} of {self.total} step{'' if self.total == 1 else 's'}"


def _steps(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    execution = record.get("execution") or {}
    steps = execution.get("steps") or {}
    return steps if isinstance(steps, dict) else {}


def progress(record: dict[str, Any]) -> Progress:
    """The progress of an execution record."""
    steps = [s for sid, s in _steps(record).items() if sid != "_root" and isinstance(s, dict)]
    done = sum(1 for s in steps if (s.get("invoke") or {}).get("state") in _SETTLED)
    return Progress(done, len(steps))


def stages(record: dict[str, Any]) -> list[list[str]]:
    """The step ids stage by stage, from ``_root`` along ``next`` (steps of one stage run together);
    a step no ``next`` reaches comes last, in a stage of its own."""
    steps = _steps(record)
    seen: set[str] = set()
    out: list[list[str]] = []
    current = list((steps.get("_root") or {}).get("next") or [])
    while current:
        stage = [sid for sid in current if sid in steps and sid not in seen]
        if not stage:
            break
        seen.update(stage)
        out.append(stage)
        current = [n for sid in stage for n in (steps[sid].get("next") or [])]
    rest = [sid for sid in steps if sid != "_root" and sid not in seen]
    out.extend([sid] for sid in rest)
    return out


@dataclass
class StepView:
    """One step as the page shows it."""

    id: str
    name: str
    position: int  # 1-based, in stage order
    stage: int
    invoke_state: str
    invoke_status: str
    compensate_state: str
    compensate_status: str
    has_compensation: bool
    attempts: int
    started: str
    duration: str
    output: str | None
    compensation: str | None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def waiting(self) -> str | None:
        """``"invoke"`` or ``"compensate"`` when that handler waits for a response from outside."""
        if self.invoke_state == "invoking" and self.invoke_status == "waiting_response":
            return "invoke"
        if self.compensate_state == "compensating" and self.compensate_status == "waiting_response":
            return "compensate"
        return None

    @property
    def anchor(self) -> str:
        """The id of the step's row on the page (``step-2-charge``: short even for a deep step id)."""
        return f"step-{self.position}-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in self.name[:64])


def _error_view(entry: dict[str, Any]) -> dict[str, Any]:
    error = entry.get("error") if isinstance(entry.get("error"), dict) else {}
    assert isinstance(error, dict)
    return {"handler": entry.get("handler_type") or "invoke", "name": str(error.get("name") or "Error"),
            "message": str(error.get("message") or ""), "stack": str(error.get("stack") or "")}


def steps_of(record: dict[str, Any], now: float | None = None) -> list[StepView]:
    """The steps of an execution record in stage order, each with its state, times, values and errors.

    The record keeps when each step started, not when it ended: a step's duration is measured to
    the start of the next stage (or to the execution's last update once it finished, or to ``now``
    while it runs).
    """
    steps = _steps(record)
    context = record.get("context") or {}
    data = context.get("data") or {}
    outputs = data.get("invoke") or {}
    compensations = data.get("compensate") or {}
    errors = [e for e in context.get("errors") or [] if isinstance(e, dict)]
    updated = _parse_time(record.get("updated_at"))
    finished = record.get("state") in FINISHED
    now = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    order = stages(record)
    starts: list[list[float]] = [[float(steps[s]["startedAt"]) for s in stage
                                  if isinstance(steps[s].get("startedAt"), int | float)] for stage in order]
    views: list[StepView] = []
    for index, stage in enumerate(order):
        next_start = min(starts[index + 1]) / 1000 if index + 1 < len(starts) and starts[index + 1] else None
        for sid in stage:
            step = steps[sid]
            definition = step.get("definition") or {}
            name = str(definition.get("action") or sid.rsplit(".", 1)[-1])
            invoke, compensate = step.get("invoke") or {}, step.get("compensate") or {}
            started_ms = step.get("startedAt")
            duration = None
            if isinstance(started_ms, int | float):
                end = next_start
                if end is None:
                    end = updated.timestamp() if finished and updated else (
                        now if invoke.get("state") == "invoking" else None)
                duration = None if end is None else end - started_ms / 1000
            views.append(StepView(
                id=sid, name=name, position=len(views) + 1, stage=index,
                invoke_state=str(invoke.get("state") or "not_started"),
                invoke_status=str(invoke.get("status") or "idle"),
                compensate_state=str(compensate.get("state") or "dormant"),
                compensate_status=str(compensate.get("status") or "idle"),
                has_compensation=not definition.get("noCompensation", False),
                attempts=int(step.get("invokeAttempts") or step.get("attempts") or 0),
                started=time_text(started_ms), duration=duration_text(duration),
                output=pretty(outputs[name]) if name in outputs else None,
                compensation=pretty(compensations[name]) if name in compensations else None,
                errors=[_error_view(e) for e in errors if e.get("action") == name]))
    return views
