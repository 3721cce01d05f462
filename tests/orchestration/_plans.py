"""Helpers that build plans and drive transactions by hand (no asyncio, no SDK)."""

from __future__ import annotations

from typing import Any

from stepwork.orchestration.definition import Plan, StepOptions, parse_step_options, parse_workflow_options
from stepwork.orchestration.transaction import FailureOutcome, Transaction

Stage = str | StepOptions | tuple[str | StepOptions, ...]


def opts(name: str, **options: Any) -> StepOptions:
    """Validated options of a step called ``name``."""
    return parse_step_options(name, options)


def make_plan(workflow: str, *stages: Stage, **workflow_options: Any) -> Plan:
    """A plan whose stages are given as names/options (a tuple is a ``parallelize`` stage)."""
    built: list[list[StepOptions]] = []
    for stage in stages:
        members = stage if isinstance(stage, tuple) else (stage,)
        built.append([m if isinstance(m, StepOptions) else opts(m) for m in members])
    return Plan(parse_workflow_options({"name": workflow, **workflow_options}), built)


def make_txn(plan: Plan, payload: Any = None) -> Transaction:
    """A fresh transaction of ``plan``, already ``invoking``."""
    txn = Transaction(plan, "tx-1", "run-1", payload)
    txn.begin(1_700_000_000.5)
    return txn


def index(txn: Transaction, name: str) -> int:
    """The index of step ``name``."""
    return txn.plan.step(name).index


def succeed(txn: Transaction, name: str, output: Any = None, compensate_input: Any = None) -> None:
    """One successful attempt of step ``name``."""
    i = index(txn, name)
    txn.start_invoke(i, 1_700_000_001.0)
    txn.invoke_succeeded(i, output, compensate_input)


def fail(txn: Transaction, name: str, error: object = "boom", **kwargs: Any) -> FailureOutcome:
    """One failed attempt of step ``name``; returns what the transaction decides."""
    i = index(txn, name)
    txn.start_invoke(i, 1_700_000_001.0)
    return txn.invoke_failed(i, error, **kwargs)


def run_stage_ok(txn: Transaction) -> tuple[int, ...]:
    """Start the next stage and let every pending step of it succeed (output = its name)."""
    stage = txn.next_stage()
    assert stage is not None
    for i in stage:
        if txn.is_pending(i):
            succeed(txn, txn.plan.steps[i].name, txn.plan.steps[i].name, txn.plan.steps[i].name)
    return stage


def names(txn: Transaction, indexes: list[int] | tuple[int, ...]) -> list[str]:
    """Step names of ``indexes``."""
    return [txn.plan.steps[i].name for i in indexes]
