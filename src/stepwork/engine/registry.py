"""The process-wide registry of workflows by name; the engine runs workflows by name through it.

The registry holds what the composition API built (``stepwork.sdk``'s ``Workflow``) through the
small protocol below, so the engine never imports the builder.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from stepwork.engine.compiled import CompiledWorkflow
from stepwork.errors import StepworkError

__all__ = ["Runnable", "get_workflow", "register_workflow", "registered_workflows", "unregister_workflow"]


class Runnable(Protocol):
    """What the engine needs of a workflow: its name, options and compiled plan."""

    @property
    def name(self) -> str: ...

    @property
    def options(self) -> Any: ...

    @property
    def compiled(self) -> CompiledWorkflow: ...


_lock = threading.Lock()
_workflows: dict[str, Any] = {}


def register_workflow(workflow: Runnable) -> None:
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


def _graph(workflow: Runnable) -> list[list[dict[str, Any]]]:
    # The flat stages, not the nested tree: comparing a 1,000-step tree would recurse too deep.
    plan = workflow.compiled.plan
    return [[plan.steps[i].definition for i in stage] for stage in plan.stages]


def get_workflow(name: str) -> Any:
    """The workflow registered as ``name``; ``StepworkError`` (``not_found``) otherwise."""
    workflow = _workflows.get(name)
    if workflow is None:
        raise StepworkError(StepworkError.Types.NOT_FOUND,
                            f'Workflow with id "{name}" not found. Import the module that defines it in every '
                            "process that runs, completes or recovers its executions (the engine finds "
                            "workflows by name in the process's registry).")
    return workflow


def registered_workflows() -> dict[str, Any]:
    """A snapshot of the registry."""
    with _lock:
        return dict(_workflows)


def unregister_workflow(name: str) -> None:
    """Remove ``name`` from the registry (no error if absent)."""
    with _lock:
        _workflows.pop(name, None)
