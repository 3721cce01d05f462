"""Concurrent stored runs on PostgreSQL share commits (group commit, see
``stepwork.storage.postgres.group_commit``): results stay right, a run whose checkpoint the server
rejects fails alone and is kept for recovery, the others of its batches finish."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from stepwork import StepResponse, StepworkError, WorkflowResponse, create_step, create_workflow
from stepwork.engine.engine import WorkflowEngine
from stepwork.engine.recovery import recover_orphans
from stepwork.storage.postgres import PostgresStore
from tests.conftest import BACKENDS, FakeClock

pytestmark = pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL left out (STEPWORK_TEST_BACKENDS)")

RUNS = 200
STEPS = 5


def _linear(name: str, retention: float | None = None) -> Any:
    steps = [create_step(f"{name}-s{i}", lambda v: StepResponse(v + 1)) for i in range(STEPS)]

    def compose(value: Any) -> WorkflowResponse[Any]:
        for s in steps:
            value = s(value)
        return WorkflowResponse(value)

    options: dict[str, Any] = {"name": name, "store": True}
    if retention is not None:
        options["retention_time"] = retention
    return create_workflow(options, compose)


async def test_concurrent_runs_share_commits_and_finish_right(pg_database_url: str, wf_name: str) -> None:
    wf = _linear(wf_name)
    async with WorkflowEngine(pg_database_url, poll_interval=0.05) as engine:
        store = engine.store
        assert isinstance(store, PostgresStore)
        group = store.group_commit
        before = group.commits
        results = await asyncio.gather(*(engine.run(wf, i) for i in range(RUNS)))
        assert [r.result for r in results] == [i + STEPS for i in range(RUNS)]
        assert all(r.transaction.state == "done" for r in results)
        checkpoints = RUNS * (STEPS + 1)
        assert group.batches > 0 and group.largest > 1
        assert group.commits - before < checkpoints / 4  # far fewer commits than checkpoints
        _, left = await engine.list_and_count_workflow_executions({"workflow_id": wf.compiled.name}, take=0)
        assert left == 0


async def test_a_rejected_checkpoint_fails_its_run_alone_and_recovery_finishes_it(
        pg_database_url: str, wf_name: str) -> None:
    wf = _linear(wf_name, retention=3600)
    poison = "tx-poison"
    clock = FakeClock()
    async with await psycopg.AsyncConnection.connect(pg_database_url, autocommit=True) as admin, \
            WorkflowEngine(pg_database_url, poll_interval=60, lease_ttl=5, clock=clock) as engine:
        # The server rejects step 3's start of one execution (a trigger), once its row exists.
        await admin.execute(
            "CREATE OR REPLACE FUNCTION stepwork_test_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.transaction_id = '{poison}' AND NEW.step_index = 3 THEN "
            "RAISE EXCEPTION 'poisoned checkpoint'; END IF; RETURN NEW; END $$")
        await admin.execute("CREATE TRIGGER stepwork_test_poison BEFORE INSERT OR UPDATE ON "
                            "workflow_execution_step FOR EACH ROW EXECUTE FUNCTION stepwork_test_poison()")
        try:
            outcomes = await asyncio.gather(
                *(engine.run(wf, i, transaction_id=poison if i == 7 else f"tx-{i}") for i in range(50)),
                return_exceptions=True)
        finally:
            await admin.execute("DROP TRIGGER stepwork_test_poison ON workflow_execution_step")
        failed = outcomes[7]
        assert isinstance(failed, StepworkError) and failed.type == "database_error"
        assert "poisoned checkpoint" in failed.message and "is kept and continues" in failed.message
        assert [getattr(r, "result", r) for i, r in enumerate(outcomes) if i != 7] == [
            i + STEPS for i in range(50) if i != 7]
        store = engine.store
        assert isinstance(store, PostgresStore) and store.group_commit.retried > 0

        # its lease runs out; recovery takes it over and finishes it
        clock.advance(10)
        await recover_orphans(engine)
        for _ in range(200):
            row = await store.latest(wf.compiled.name, poison)
            if row is not None and row.state == "done":
                break
            await asyncio.sleep(0.02)
        assert row is not None and row.state == "done"
        assert [s.output for s in await store.steps(row.key)][-1] == str(7 + STEPS)
