"""Helpers for reading a run's stored records."""

from __future__ import annotations

from typing import Any

from stepwork import WorkflowResult


def step_records(result: WorkflowResult[Any]) -> dict[str, dict[str, Any]]:
    """The execution's step records keyed by step name (``_root`` left out)."""
    steps = result.transaction.execution["steps"]
    return {rid.rsplit(".", 1)[-1]: rec for rid, rec in steps.items() if rid != "_root"}


def states(result: WorkflowResult[Any]) -> dict[str, tuple[str, str, str, str]]:
    """``{name: (invoke state, invoke status, compensate state, compensate status)}``."""
    return {name: (r["invoke"]["state"], r["invoke"]["status"], r["compensate"]["state"],
                   r["compensate"]["status"]) for name, r in step_records(result).items()}


# medusa-behaviour §11.2, terminal combinations.
SUCCEEDED = ("done", "ok", "dormant", "idle")
SUCCEEDED_COMPENSATED = ("done", "ok", "reverted", "ok")
FAILED_COMPENSATED = ("failed", "permanent_failure", "reverted", "ok")
FAILED_NO_COMPENSATION = ("failed", "permanent_failure", "reverted", "idle")
FAILURE_IGNORED = ("failed", "permanent_failure", "dormant", "idle")
SKIPPED = ("skipped", "ok", "dormant", "idle")
SKIPPED_ON_FAILURE = ("skipped_failure", "idle", "dormant", "idle")
NEVER_REACHED = ("not_started", "idle", "dormant", "idle")
TIMED_OUT_COMPENSATED = ("timeout", "permanent_failure", "reverted", "ok")
TIMED_OUT_IGNORED = ("timeout", "permanent_failure", "dormant", "idle")
