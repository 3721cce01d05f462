"""The live display of a run's steps, fed by the engine's events.

On a terminal it is a table redrawn as events arrive (rich ``Live``); elsewhere (a pipe, a log
file, a test) each event is one printed line, and the final table is printed at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from stepwork.cli.console import state_text
from stepwork.orchestration.definition import Plan

__all__ = ["StepDisplay", "steps_table"]

_EVENT_LINES = {
    "on_begin": "run started",
    "on_resume": "run resumed",
    "on_step_begin": "▸ {step} started",
    "on_step_success": "✔ {step} done",
    "on_step_failure": "✘ {step} failed{error}",
    "on_step_awaiting": "… {step} waits for its response",
    "on_compensate_begin": "↺ compensating",
    "compensate_step_begin": "↺ {step} compensating",
    "on_compensate_step_success": "↺ {step} compensated",
    "on_compensate_step_failure": "✘ {step} compensation failed{error}",
    "on_timeout": "⏱ the workflow timed out",
    "on_finish": "finished: {state}",
}


def _states(record: Mapping[str, Any], key: str) -> tuple[str, str]:
    part = record.get(key) or {}
    return str(part.get("state", "not_started")), str(part.get("status", "idle"))


def steps_table(rows: Iterable[tuple[str, tuple[str, str], tuple[str, str], int]], title: str | None = None) -> Table:
    """A table of steps: name, invoke state/status, compensate state/status, attempts."""
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("step")
    table.add_column("invoke")
    table.add_column("compensate")
    table.add_column("attempts", justify="right")
    for name, invoke, compensate, attempts in rows:
        table.add_row(name, _pair(invoke), _pair(compensate), str(attempts))
    return table


def _pair(states: tuple[str, str]) -> Text:
    state, status = states
    text = state_text(state)
    if status not in ("idle", "ok"):
        text.append(" / ").append_text(state_text(status))
    return text


class StepDisplay:
    """Shows the steps of one run as its events arrive; ``finish`` is set by ``on_finish``."""

    def __init__(self, plan: Plan, console: Console) -> None:
        self.console = console
        self.rows: dict[str, tuple[tuple[str, str], tuple[str, str], int]] = {
            s.name: (("not_started", "idle"), ("not_started", "idle"), 0) for s in plan.steps}
        self.finish: dict[str, Any] | None = None
        self.live: Live | None = None
        if console.is_terminal:
            self.live = Live(self.table(), console=console, refresh_per_second=10, transient=False)

    def table(self) -> Table:
        """The steps as they stand."""
        return steps_table((name, *row) for name, row in self.rows.items())

    def __enter__(self) -> StepDisplay:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self.table())
            self.live.stop()
        else:
            self.console.print(self.table())

    def update_from(self, execution: Mapping[str, Any]) -> None:
        """Take every step's state from an ``execution`` record (after the run returned)."""
        for step_id, record in (execution.get("steps") or {}).items():
            if step_id != "_root":
                self._set(record)
        if self.live is not None:
            self.live.update(self.table())

    def _set(self, record: Mapping[str, Any]) -> str:
        name = str((record.get("definition") or {}).get("action") or record.get("id", "?"))
        attempts = int(record.get("invokeAttempts") or record.get("attempts") or 0)  # invoke's, after compensation
        self.rows[name] = (_states(record, "invoke"), _states(record, "compensate"), attempts)
        return name

    def on_event(self, event: dict[str, Any]) -> None:
        """An engine event (subscriber of the run's transaction)."""
        kind = str(event.get("event_type"))
        step = event.get("step")
        name = self._set(step) if isinstance(step, Mapping) else ""
        if kind == "on_finish":
            self.finish = event
        if self.live is not None:
            self.live.update(self.table())
            return
        errors = event.get("errors") or []
        message = ""
        if errors and isinstance(errors[-1], Mapping):
            message = f": {(errors[-1].get('error') or {}).get('message', '')}"
        if kind == "on_step_begin" and isinstance(step, Mapping) and \
                (step.get("compensate") or {}).get("state") == "compensating":
            kind = "compensate_step_begin"
        line = _EVENT_LINES.get(kind, kind).format(step=name, error=message, state=event.get("state", ""))
        self.console.print(Text("  " + line, style="dim" if kind in ("on_begin", "on_resume") else ""))
