"""Handler patches: how tests change what steps do, for the runs started in a context.

``stepwork.testing`` (step overrides, injected failures, recording inputs) sets :data:`PATCHES` to
a function that returns replacement handlers for a workflow, or ``None`` to leave it alone. A run
reads it once, when it is created; with nothing set (production) that is one context-variable read.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from stepwork.sdk.handlers import CompiledWorkflow, StepHandler

__all__ = ["PATCHES", "Patcher"]

Patcher = Callable[[CompiledWorkflow], "tuple[StepHandler, ...] | None"]

PATCHES: ContextVar[Patcher | None] = ContextVar("stepwork_patches", default=None)
