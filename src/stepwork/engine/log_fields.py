"""The ids an engine log record carries as ``extra`` attributes, and the log of a failed step.

Every record of the ``stepwork.engine`` logger about one execution has ``workflow_id``,
``transaction_id`` and ``run_id`` attributes (``None`` where the record does not know one) and, about
one step, ``step_id`` (its id in the execution record, e.g. ``"_root.reserve.charge"``): a
``%(transaction_id)s`` format or a JSON formatter (``stepwork.JsonLogFormatter``) can print them.
They are built only for a record that is emitted (``log_step_failure`` asks ``logger.isEnabledFor``
before anything else).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from stepwork.orchestration.transaction import FailureOutcome

if TYPE_CHECKING:
    from stepwork.engine.step_calls import StepCalls

__all__ = ["LOG_FIELDS", "log_extra", "log_step_failure"]

LOG_FIELDS = ("workflow_id", "transaction_id", "run_id", "step_id")
logger = logging.getLogger("stepwork.engine")
_NEXT = {FailureOutcome.CONTINUE: "the workflow continues", FailureOutcome.COMPENSATE: "the workflow compensates"}


def log_extra(workflow_id: str | None, transaction_id: str | None, run_id: str | None = None,
              step_id: str | None = None) -> dict[str, Any]:
    """The ``extra`` of a log record about one execution (and one of its steps)."""
    return {"workflow_id": workflow_id, "transaction_id": transaction_id, "run_id": run_id, "step_id": step_id}


def log_step_failure(run: StepCalls, i: int, action: str, error: BaseException, outcome: FailureOutcome) -> None:
    """Log a failed attempt of step ``i``: DEBUG when it is attempted again, INFO when it failed for
    good. (Not WARNING: the run's caller gets the failure as its result or error, and an application
    without logging set up must not print a traceback per failed workflow; raise the level of
    ``stepwork.engine`` to INFO to see them.)"""
    level = logging.DEBUG if outcome is FailureOutcome.RETRY else logging.INFO
    if not logger.isEnabledFor(level):
        return
    step = run.txn.plan.steps[i]
    if outcome is FailureOutcome.RETRY:
        what = "it is attempted again"
    elif action == "compensate":
        what = "the execution ends failed"
    else:
        what = _NEXT.get(outcome, outcome.value)
    logger.log(level, 'Step "%s" of workflow "%s" (transaction "%s") failed (%s, attempt %s): %s: %s; %s.',
               step.name, run.workflow_id, run.transaction_id, action, run.txn.step_record(i).attempts,
               type(error).__name__, _text(error), what, exc_info=error,
               extra=log_extra(run.workflow_id, run.transaction_id, run.run_id, step.id))


def _text(error: BaseException) -> str:
    """The error's message (an exception whose ``str()`` raises must not break the run's log)."""
    try:
        return str(error)
    except Exception:
        return "<the error's message could not be read>"
