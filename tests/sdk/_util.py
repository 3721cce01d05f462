"""Small readers shared by the SDK tests (no fixtures, no mocks)."""

from __future__ import annotations

from typing import Any

from stepwork import WorkflowResult


def step_records(result: WorkflowResult[Any]) -> dict[str, dict[str, Any]]:
    """The stored step records of a run, keyed by step name (``_root`` left out)."""
    steps = result.transaction.execution["steps"]
    return {rec["definition"]["action"]: rec for key, rec in steps.items() if key != "_root"}


def invoke_states(result: WorkflowResult[Any]) -> dict[str, str]:
    """``{step name: invoke state}`` of a run."""
    return {name: rec["invoke"]["state"] for name, rec in step_records(result).items()}


def compensate_states(result: WorkflowResult[Any]) -> dict[str, str]:
    """``{step name: compensate state}`` of a run."""
    return {name: rec["compensate"]["state"] for name, rec in step_records(result).items()}
