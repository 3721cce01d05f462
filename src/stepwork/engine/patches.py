"""Handler patches: how tests change what steps do.

``stepwork.testing`` installs a patcher (``install``): a function given a workflow and a
transaction id that returns replacement handlers, or ``None`` to leave the run alone. A run asks
once, when it is created (and again when a stored run is loaded). Nothing is installed in
production: then it costs one global read per run.
"""

from __future__ import annotations

from collections.abc import Callable

from stepwork.engine.compiled import CompiledWorkflow, StepHandler

__all__ = ["Patcher", "current", "install"]

Patcher = Callable[[CompiledWorkflow, str], "tuple[StepHandler, ...] | None"]

_patcher: Patcher | None = None


def install(patcher: Patcher | None) -> None:
    """Set (or with ``None`` remove) the process's patcher."""
    global _patcher
    _patcher = patcher


def current() -> Patcher | None:
    """The installed patcher, if any."""
    return _patcher
