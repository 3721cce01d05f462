"""What a run returns: ``WorkflowResult`` and its parts (docs/workflows.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from stepwork.orchestration.execution_view import build_context, build_execution
from stepwork.orchestration.states import TransactionState
from stepwork.orchestration.transaction import StepFailure, Transaction

__all__ = ["Acknowledgement", "TransactionInfo", "WorkflowResult"]

O_co = TypeVar("O_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Whether the run finished, and whether it failed."""

    workflow_id: str
    transaction_id: str
    has_finished: bool
    has_failed: bool
    parent_step_idempotency_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The acknowledgement as a JSON-ready dict."""
        out: dict[str, Any] = {"workflow_id": self.workflow_id, "transaction_id": self.transaction_id,
                               "has_finished": self.has_finished, "has_failed": self.has_failed}
        if self.parent_step_idempotency_key is not None:
            out["parent_step_idempotency_key"] = self.parent_step_idempotency_key
        return out


class TransactionInfo:
    """The transaction of a run: ids, ``state``, and the ``execution``/``context`` records (docs/execution.md).

    ``execution`` and ``context`` are built when first read (reading them costs; running does not).
    """

    __slots__ = ("_context", "_execution", "_txn")

    def __init__(self, txn: Transaction) -> None:
        self._txn = txn
        self._execution: dict[str, Any] | None = None
        self._context: dict[str, Any] | None = None

    @property
    def transaction_id(self) -> str:
        """The transaction id."""
        return self._txn.transaction_id

    @property
    def run_id(self) -> str:
        """The run id."""
        return self._txn.run_id

    @property
    def workflow_id(self) -> str:
        """The workflow's name."""
        return self._txn.plan.workflow_id

    @property
    def state(self) -> TransactionState:
        """The transaction state when the run returned."""
        return self._txn.state

    @property
    def execution(self) -> dict[str, Any]:
        """The ``execution`` record (camelCase keys, as stored)."""
        if self._execution is None:
            self._execution = build_execution(self._txn)
        return self._execution

    @property
    def context(self) -> dict[str, Any]:
        """The ``context`` record: ``{data: {payload, invoke, compensate}, errors}``."""
        if self._context is None:
            self._context = build_context(self._txn)
        return self._context

    def __repr__(self) -> str:
        return f"TransactionInfo(transaction_id={self.transaction_id!r}, state={self.state.value!r})"


class WorkflowResult(Generic[O_co]):
    """The outcome of a run: ``result``, ``errors``, ``transaction`` and ``acknowledgement``.

    ``errors`` lists the invoke-phase failures (one per permanent failure); compensation errors are
    in ``transaction.context["errors"]`` too.
    """

    __slots__ = ("_ack", "_errors", "_parent_key", "_transaction", "_txn", "result")

    def __init__(self, result: O_co, txn: Transaction, parent_step_idempotency_key: str | None = None) -> None:
        self.result = result
        self._txn = txn
        self._parent_key = parent_step_idempotency_key
        self._errors: list[StepFailure] | None = None
        self._transaction: TransactionInfo | None = None
        self._ack: Acknowledgement | None = None

    @property
    def errors(self) -> list[StepFailure]:
        """The invoke-phase failures."""
        if self._errors is None:
            self._errors = self._txn.invoke_errors()
        return self._errors

    @property
    def transaction(self) -> TransactionInfo:
        """The run's transaction: ids, state, ``execution`` and ``context``."""
        if self._transaction is None:
            self._transaction = TransactionInfo(self._txn)
        return self._transaction

    @property
    def acknowledgement(self) -> Acknowledgement:
        """Whether the run finished, and whether it failed (``failed`` or ``reverted``)."""
        if self._ack is None:
            txn = self._txn
            self._ack = Acknowledgement(txn.plan.workflow_id, txn.transaction_id, txn.is_finished,
                                        txn.state in _FAILED, self._parent_key)
        return self._ack

    def __repr__(self) -> str:
        return (f"WorkflowResult(state={self.transaction.state.value!r}, result={self.result!r}, "
                f"errors={len(self.errors)})")


_FAILED = (TransactionState.FAILED, TransactionState.REVERTED)
