"""Queued runs: the databases engines share (an SQLite file, PostgreSQL), and waiting for runs to end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwork import WorkflowEngine
from tests.conftest import BACKENDS, throwaway_pg_database

SHARED = [b for b in BACKENDS if b in ("sqlite-file", "postgres")]
FINISHED = ("done", "failed", "reverted")


@pytest.fixture(params=SHARED)
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database several engines (and processes) share: an SQLite file, or a PostgreSQL database of
    the test's own (so no other test's queued runs are in it)."""
    if request.param == "sqlite-file":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    with throwaway_pg_database("stepwork_queue") as url:
        yield url


async def states(engine: WorkflowEngine, workflow_id: str) -> dict[str, str]:
    """``{transaction_id: state}`` of the workflow's stored executions."""
    return {e.transaction_id: e.state for e in
            await engine.list_workflow_executions({"workflow_id": workflow_id})}


async def until_finished(engine: WorkflowEngine, workflow_id: str, count: int, within: float = 30.0) -> dict[str, Any]:
    """Wait until ``count`` executions of the workflow have finished; their states."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await states(engine, workflow_id)
        if sum(s in FINISHED for s in found.values()) >= count:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not finished within {within} s: {found}")
        await asyncio.sleep(0.02)
