"""The static part of execution records, stored once per workflow definition (by hash)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from stepwork.engine.compiled import CompiledWorkflow
from stepwork.engine.registry import get_workflow, registered_workflows, registry_generation, workflow_versions
from stepwork.errors import StepworkError
from stepwork.orchestration.definition import Plan
from stepwork.orchestration.execution_view import build_execution
from stepwork.orchestration.transaction import Transaction
from stepwork.storage.base import ExecutionRow, ExecutionStore

__all__ = ["Definitions", "stale_error"]


def stale_error(row: ExecutionRow) -> StepworkError:
    """The error for an execution whose definition (its version's graph) this process does not have."""
    return StepworkError(
        StepworkError.Types.CONFLICT,
        f'Execution "{row.id}" (transaction {row.transaction_id}) of workflow "{row.workflow_id}" runs on a '
        "definition that this process does not have: it started on another version of the workflow (or on "
        "a graph since changed without a new version). It continues only where that version is defined: "
        "keep the old definition registered beside the new one (option version=...) in a process that "
        "shares the database, or cancel the execution there. It is listed with the filter stale=True.")


class Definitions:
    """Templates of the records of each workflow definition: built once per plan, stored once per
    hash, read back (and cached) when records are assembled."""

    __slots__ = ("_parsed", "_runnable", "_store", "_stored", "_templates")

    def __init__(self, store: ExecutionStore) -> None:
        self._store = store
        self._templates: dict[Plan, tuple[str, str]] = {}
        self._parsed: dict[str, dict[str, Any]] = {}
        self._stored: set[str] = set()
        self._runnable: tuple[int, dict[str, list[tuple[str, str, CompiledWorkflow]]]] | None = None

    def template(self, compiled: CompiledWorkflow) -> tuple[str, str]:
        """``(hash, JSON text)`` of the static part of a workflow's execution records.

        The nested ``definition`` tree is kept as its flat stages (a 1,000-step tree is too deep for
        JSON libraries); readers nest it again.
        """
        plan = compiled.plan
        cached = self._templates.get(plan)
        if cached is None:
            record = build_execution(Transaction(plan, "", "", None))
            for key in ("transactionId", "runId", "metadata"):
                record.pop(key, None)
            record["definition"] = None
            record["stages"] = [[plan.steps[i].definition for i in stage] for stage in plan.stages]
            text = json.dumps(record, separators=(",", ":"))
            cached = self._templates[plan] = (hashlib.sha256(text.encode()).hexdigest()[:32], text)
            self._parsed[cached[0]] = record
        return cached

    async def store(self, compiled: CompiledWorkflow, now: float) -> str:
        """Make sure the template of ``compiled`` is stored; return its hash."""
        definition_hash, text = self.template(compiled)
        if definition_hash not in self._stored:
            await self._store.put_definition(definition_hash, compiled.name, text, now)
            self._stored.add(definition_hash)
        return definition_hash

    async def record(self, definition_hash: str | None) -> dict[str, Any] | None:
        """The parsed template stored under ``definition_hash`` (cached)."""
        if definition_hash is None:
            return None
        record = self._parsed.get(definition_hash)
        if record is None:
            text = await self._store.get_definition(definition_hash)
            if text is None:
                return None
            record = self._parsed[definition_hash] = json.loads(text)
        return record

    def _registered(self) -> dict[str, list[tuple[str, str, CompiledWorkflow]]]:
        """name -> [(version, hash, compiled)] of every registered version, defined last first."""
        generation = registry_generation()
        if self._runnable is None or self._runnable[0] != generation:
            table = {name: [(version, self.template(wf.compiled)[0], wf.compiled)
                            for version, wf in reversed(workflow_versions(name).items())]
                     for name in registered_workflows()}
            self._runnable = (generation, table)
        return self._runnable[1]

    def runnable(self) -> tuple[set[str], set[str]]:
        """``(names, hashes)``: the workflows this process defines, and the definitions of their
        registered versions (what it may claim, recover and fire timers of)."""
        table = self._registered()
        return set(table), {h for versions in table.values() for _, h, _ in versions}

    def described(self) -> list[tuple[str, str, str]]:
        """``(workflow_id, version, hash)`` of every registered version (a worker's heartbeat)."""
        return [(name, version, h) for name, versions in self._registered().items() for version, h, _ in versions]

    def resolve(self, row: ExecutionRow) -> CompiledWorkflow | None:
        """The registered definition a stored execution continues on (the one it started with), or
        ``None`` if this process does not have it. Rows stored before definitions were kept (no
        hash) continue on the version defined last."""
        versions = self._registered().get(row.workflow_id)
        if not versions:
            return None
        if row.definition_hash is None:
            return versions[0][2]
        return next((c for _, h, c in versions if h == row.definition_hash), None)

    def compiled_for(self, row: ExecutionRow) -> CompiledWorkflow:
        """:meth:`resolve`, or ``StepworkError`` (``not_found`` for an unknown workflow, ``conflict``
        for a version this process lacks)."""
        compiled = self.resolve(row)
        if compiled is None:
            if row.workflow_id not in self._registered():
                get_workflow(row.workflow_id)  # raises not_found with the advice to import it
            raise stale_error(row)
        return compiled
