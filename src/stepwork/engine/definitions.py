"""The static part of execution records, stored once per workflow definition (by hash)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from stepwork.engine.compiled import CompiledWorkflow
from stepwork.orchestration.definition import Plan
from stepwork.orchestration.execution_view import build_execution
from stepwork.orchestration.transaction import Transaction
from stepwork.storage.base import ExecutionStore

__all__ = ["Definitions"]


class Definitions:
    """Templates of the records of each workflow definition: built once per plan, stored once per
    hash, read back (and cached) when records are assembled."""

    __slots__ = ("_parsed", "_store", "_stored", "_templates")

    def __init__(self, store: ExecutionStore) -> None:
        self._store = store
        self._templates: dict[Plan, tuple[str, str]] = {}
        self._parsed: dict[str, dict[str, Any]] = {}
        self._stored: set[str] = set()

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
