"""``StepContext``: the second argument of every invoke and compensate function (docs/steps.md, StepContext)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from stepwork.container import Container

__all__ = ["RunInfo", "StepContext"]


class RunInfo(Protocol):
    """The run-wide facts a step context reads (the engine's run object provides them)."""

    workflow_id: str
    transaction_id: str
    run_id: str
    context: dict[str, Any]
    event_group_id: str
    parent_step_idempotency_key: str | None

    @property
    def container(self) -> Container: ...


class StepContext:
    """What a step knows about the run it belongs to.

    Attributes: ``workflow_id``, ``step_name``, ``action`` (``"invoke"``/``"compensate"``),
    ``idempotency_key`` (``"{workflow_id}:{transaction_id}:{step_name}:{action}"``, stable across
    retries, restarts and workers), ``attempt`` (1-based; restarts at 1 for the compensation),
    ``container``, ``metadata``, ``context`` (the run context dict), ``transaction_id``, ``run_id``,
    ``event_group_id``, ``parent_step_idempotency_key`` and ``logger``.
    """

    __slots__ = ("_run", "action", "attempt", "step_name")

    def __init__(self, run: RunInfo, step_name: str, action: str, attempt: int) -> None:
        self._run = run
        self.step_name = step_name
        self.action = action
        self.attempt = attempt

    @property
    def workflow_id(self) -> str:
        """The workflow's name."""
        return self._run.workflow_id

    @property
    def transaction_id(self) -> str:
        """The execution's transaction id."""
        return self._run.transaction_id

    @property
    def run_id(self) -> str:
        """This run's id (a new one each time a finished transaction id is run again)."""
        return self._run.run_id

    @property
    def idempotency_key(self) -> str:
        """``"{workflow_id}:{transaction_id}:{step_name}:{action}"``."""
        run = self._run
        return f"{run.workflow_id}:{run.transaction_id}:{self.step_name}:{self.action}"

    @property
    def container(self) -> Container:
        """The container the run was started with (an empty one if none was given)."""
        return self._run.container

    @property
    def context(self) -> dict[str, Any]:
        """The run context: the caller's keys plus ``transaction_id`` and ``event_group_id``."""
        return self._run.context

    @property
    def event_group_id(self) -> str:
        """The event group of the run, shared by nested runs."""
        return self._run.event_group_id

    @property
    def parent_step_idempotency_key(self) -> str | None:
        """For a nested run, the idempotency key of the parent's step; else ``None``."""
        return self._run.parent_step_idempotency_key

    @property
    def metadata(self) -> dict[str, Any]:
        """``{model_id, idempotency_key, action, action_type, attempt, timestamp}``."""
        return {
            "model_id": self._run.workflow_id,
            "idempotency_key": self.idempotency_key,
            "action": self.step_name,
            "action_type": self.action,
            "attempt": self.attempt,
            "timestamp": int(time.time() * 1000),
        }

    @property
    def logger(self) -> logging.Logger:
        """The container's ``logger`` if one is registered, else ``stepwork.workflow.<name>``."""
        logger = self._run.container.resolve_optional("logger")
        if isinstance(logger, logging.Logger):
            return logger
        return logging.getLogger(f"stepwork.workflow.{self._run.workflow_id}")

    def __repr__(self) -> str:
        return (f"StepContext(workflow_id={self.workflow_id!r}, step_name={self.step_name!r}, "
                f"action={self.action!r}, attempt={self.attempt})")
