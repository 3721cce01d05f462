"""The process-wide registry of workflows by name; the engine runs workflows by name through it.

The registry holds what the composition API built (``stepwork.sdk``'s ``Workflow``) through the
small protocol below, so the engine never imports the builder.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from stepwork.engine.compiled import CompiledWorkflow
from stepwork.errors import StepworkError

__all__ = ["Runnable", "get_workflow", "register_workflow", "registered_workflows", "registry_generation",
           "unregister_workflow", "workflow_versions"]


class Runnable(Protocol):
    """What the engine needs of a workflow: its name, options and compiled plan."""

    @property
    def name(self) -> str: ...

    @property
    def options(self) -> Any: ...

    @property
    def compiled(self) -> CompiledWorkflow: ...


_lock = threading.Lock()
_workflows: dict[str, Any] = {}  # name -> the version defined last (what a run by name starts)
_versions: dict[str, dict[str, Any]] = {}  # name -> version -> workflow
_generation = 0  # bumped at every change, so engines know when to recompute what they can run


def _version(workflow: Runnable) -> str:
    return str(getattr(workflow.options, "version", "1"))


def register_workflow(workflow: Runnable) -> None:
    """Register ``workflow`` under its name and version; a run by name starts the version defined last.

    Defining a name and version again is allowed with an identical step graph (the new definition's
    functions replace the old ones, as when a module is reloaded); a different graph raises
    ``StepworkError``. Other versions of the same name stay registered beside it.
    """
    global _generation
    version = _version(workflow)
    with _lock:
        versions = _versions.setdefault(workflow.name, {})
        existing = versions.get(version)
        if existing is not None and _graph(existing) != _graph(workflow):
            raise StepworkError(StepworkError.Types.DUPLICATE_ERROR,
                                f'Workflow with id "{workflow.name}" (version "{version}") and step definition '
                                "already exists. Give the new definition another version "
                                f'(option version="...") to run it beside this one, or another name.')
        versions[version] = workflow
        _workflows[workflow.name] = workflow
        _generation += 1


def _graph(workflow: Runnable) -> list[list[dict[str, Any]]]:
    # The flat stages, not the nested tree: comparing a 1,000-step tree would recurse too deep.
    plan = workflow.compiled.plan
    return [[plan.steps[i].definition for i in stage] for stage in plan.stages]


def get_workflow(name: str, version: str | None = None) -> Any:
    """The workflow registered as ``name`` (the version defined last, or ``version``);
    ``StepworkError`` (``not_found``) otherwise."""
    workflow = _workflows.get(name) if version is None else _versions.get(name, {}).get(version)
    if workflow is None:
        if version is not None and name in _workflows:
            known = ", ".join(f'"{v}"' for v in _versions.get(name, {}))
            raise StepworkError(StepworkError.Types.NOT_FOUND,
                                f'Workflow "{name}" has no version "{version}" in this process (its versions '
                                f"here: {known}).")
        raise StepworkError(StepworkError.Types.NOT_FOUND,
                            f'Workflow with id "{name}" not found. Import the module that defines it in every '
                            "process that runs, completes or recovers its executions (the engine finds "
                            "workflows by name in the process's registry).")
    return workflow


def workflow_versions(name: str) -> dict[str, Any]:
    """The versions of ``name`` registered in this process (version -> workflow), oldest defined first."""
    with _lock:
        return dict(_versions.get(name, {}))


def registered_workflows() -> dict[str, Any]:
    """A snapshot of the registry: each name with the version defined last."""
    with _lock:
        return dict(_workflows)


def registry_generation() -> int:
    """A number that changes whenever a workflow is registered or removed."""
    return _generation


def unregister_workflow(name: str, version: str | None = None) -> None:
    """Remove ``name`` (every version, or only ``version``) from the registry; no error if absent."""
    global _generation
    with _lock:
        versions = _versions.get(name, {})
        if version is None:
            versions.clear()
        else:
            versions.pop(version, None)
        if not versions:
            _versions.pop(name, None)
            _workflows.pop(name, None)
        elif _workflows.get(name) is not None and _version(_workflows[name]) not in versions:
            _workflows[name] = list(versions.values())[-1]
        _generation += 1
