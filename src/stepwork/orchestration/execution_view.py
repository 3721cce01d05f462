"""The ``execution`` and ``context`` records (docs/execution.md), built from a transaction when first read.

The in-memory path never builds these unless someone reads them (building them on every run
halves throughput); the durable engine stores the same shapes, so both paths look identical.
"""

from __future__ import annotations

from typing import Any

from stepwork.orchestration.transaction import Transaction

__all__ = ["build_context", "build_execution", "build_step_record", "millis"]


def millis(seconds: float | None) -> int | None:
    """Epoch seconds to epoch milliseconds (Medusa's timestamps), ``None`` kept."""
    return None if seconds is None else int(seconds * 1000)


def build_step_record(txn: Transaction, index: int) -> dict[str, Any]:
    """The stored record of one step: id, depth, definition, invoke, compensate, attempts…"""
    plan = txn.plan
    step = plan.steps[index]
    rec = txn.step_record(index)
    stages = plan.stages
    stage = stages[step.stage]
    nxt: list[str] = []
    if stage[-1] == index and step.stage + 1 < len(stages):
        nxt = [plan.steps[i].id for i in stages[step.stage + 1]]
    record = {
        "id": step.id,
        "depth": step.depth,
        "definition": dict(step.definition),
        "invoke": {"state": rec.invoke_state.value, "status": rec.invoke_status.value},
        "compensate": {"state": rec.comp_state.value, "status": rec.comp_status.value},
        "attempts": rec.attempts,
        "failures": rec.failures,
        "lastAttempt": millis(rec.last_attempt),
        "startedAt": millis(rec.started_at),
        "next": nxt,
    }
    if txn.invoke_attempts and index in txn.invoke_attempts:
        # ``attempts`` restarted for the compensation (as in Medusa); the invoke's count is kept here.
        record["invokeAttempts"] = txn.invoke_attempts[index]
    return record


def build_execution(txn: Transaction) -> dict[str, Any]:
    """The ``execution`` dict (camelCase keys, as Medusa stores it)."""
    plan = txn.plan
    steps: dict[str, Any] = {
        "_root": {"id": "_root", "next": [plan.steps[i].id for i in plan.stages[0]] if plan.stages else []},
    }
    for i in range(len(plan.steps)):
        steps[plan.steps[i].id] = build_step_record(txn, i)
    return {
        "state": txn.state.value,
        "steps": steps,
        "modelId": plan.workflow_id,
        "options": plan.options.to_definition(store=plan.store),
        "metadata": dict(txn.metadata),
        "startedAt": millis(txn.started_at),
        "definition": plan.definition,
        "timedOutAt": millis(txn.timed_out_at),
        "cancelledAt": millis(txn.cancelled_at),
        "hasAsyncSteps": plan.has_async_steps,
        "hasFailedSteps": txn.has_failed_steps,
        "hasSkippedSteps": txn.has_skipped_steps,
        "hasWaitingSteps": txn.has_waiting_steps,
        "hasRevertedSteps": txn.has_reverted_steps,
        "hasSkippedOnFailureSteps": txn.has_skipped_on_failure_steps,
        "transactionId": txn.transaction_id,
        "runId": txn.run_id,
    }


def build_context(txn: Transaction) -> dict[str, Any]:
    """The ``context`` dict: ``{data: {payload, invoke, compensate}, errors: [...]}``."""
    plan = txn.plan
    invoke: dict[str, Any] = {}
    for i, step in enumerate(plan.steps):
        if txn.inv_state[i].value in ("done", "timeout") and step.options.save_response:
            invoke[step.name] = txn.outputs[i]
    return {
        "data": {"payload": txn.payload, "invoke": invoke, "compensate": dict(txn.comp_outputs)},
        "errors": [e.to_dict() for e in txn.errors],
    }
