"""The process-wide registry of workflows by name; the engine runs workflows by name through it."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from stepwork.errors import StepworkError

if TYPE_CHECKING:
    from stepwork.sdk.workflows import Workflow

__all__ = ["get_workflow", "register_workflow", "registered_workflows", "unregister_workflow"]

_lock = threading.Lock()
_workflows: dict[str, Workflow[Any, Any]] = {}


def register_workflow(workflow: Workflow[Any, Any]) -> None:
    """Register ``workflow`` under its name.

    Defining a name again is allowed with an identical step graph (the new definition's functions
    replace the old ones, as when a module is reloaded); a different graph raises ``StepworkError``.
    """
    with _lock:
        existing = _workflows.get(workflow.name)
        if existing is not None and _graph(existing) != _graph(workflow):
            raise StepworkError(StepworkError.Types.DUPLICATE_ERROR,
                                f'Workflow with id "{workflow.name}" and step definition already exists. '
                                "Give the new workflow another name.")
        _workflows[workflow.name] = workflow


def _graph(workflow: Workflow[Any, Any]) -> list[list[dict[str, Any]]]:
    # The flat stages, not the nested tree: comparing a 1,000-step tree would recurse too deep.
    plan = workflow.compiled.plan
    return [[plan.steps[i].definition for i in stage] for stage in plan.stages]


def get_workflow(name: str) -> Workflow[Any, Any]:
    """The workflow registered as ``name``; ``StepworkError`` (``not_found``) otherwise."""
    workflow = _workflows.get(name)
    if workflow is None:
        raise StepworkError(StepworkError.Types.NOT_FOUND, f'Workflow with id "{name}" not found.')
    return workflow


def registered_workflows() -> dict[str, Workflow[Any, Any]]:
    """A snapshot of the registry."""
    with _lock:
        return dict(_workflows)


def unregister_workflow(name: str) -> None:
    """Remove ``name`` from the registry (no error if absent)."""
    with _lock:
        _workflows.pop(name, None)
