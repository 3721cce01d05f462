"""R05, poisoned rows: executions the engine cannot read (corrupt JSON in ``context`` or ``progress``,
a workflow nobody defines, an empty transaction id), queued or orphaned (their owner gone, lease
expired), beside good ones on one PostgreSQL database. A worker engine must finish every good
execution, keep claiming (a run queued afterwards finishes too), and never drive a bad one to ``done``:
one whose columns are corrupt is failed and reported once (not retried at every claim or poll), one of
a workflow it does not define is left alone (for a process that defines it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import psycopg
import pytest

from stepwork import WorkflowEngine, create_step, create_workflow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

GOOD = [f"good-{i}" for i in range(4)]


async def rows(url: str) -> dict[str, dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT transaction_id, workflow_id, state, lease_owner, queued_at, context "
                                 "FROM workflow_execution")
        return {r[0]: {"workflow_id": r[1], "state": r[2], "lease_owner": r[3], "queued_at": r[4],
                       "context": r[5]} for r in await cur.fetchall()}


async def poison(url: str, bad: list[str]) -> None:
    """Turn the runs ``bad-*`` queued by the test into rows the engine cannot use (an empty transaction
    id once only: one live execution per workflow and transaction id)."""
    orphan = ("state = 'invoking', queued_at = NULL, lease_owner = 'gone-host:1:01GONE', "
              "lease_expires_at = now() - interval '1 hour'")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for sql in [
            "UPDATE workflow_execution SET context = '{not json' WHERE transaction_id = 'bad-q-context'",
            "UPDATE workflow_execution SET progress = '{not json' WHERE transaction_id = 'bad-q-progress'",
            "UPDATE workflow_execution SET workflow_id = 'no-such-workflow' WHERE transaction_id = 'bad-q-unknown'",
            "UPDATE workflow_execution SET transaction_id = '' WHERE transaction_id = 'bad-q-empty'",
            f"UPDATE workflow_execution SET context = '{{not json', {orphan} WHERE transaction_id = 'bad-o-context'",
            f"UPDATE workflow_execution SET progress = '[1, 2', {orphan} WHERE transaction_id = 'bad-o-progress'",
            f"UPDATE workflow_execution SET workflow_id = 'no-such-workflow', {orphan} "
            "WHERE transaction_id = 'bad-o-unknown'",
        ]:
            if sql.split("transaction_id = '")[-1].rstrip("'") not in bad:
                continue
            cur = await conn.execute(sql)
            assert cur.rowcount == 1, sql


QUEUED_BAD = ["bad-q-context", "bad-q-progress", "bad-q-unknown", "bad-q-empty"]
ORPHANED_BAD = ["bad-o-context", "bad-o-progress", "bad-o-unknown"]


@pytest.mark.parametrize("bad", [
    pytest.param(QUEUED_BAD, id="queued"),
    pytest.param(ORPHANED_BAD, id="orphaned"),
])
async def test_poisoned_rows_do_not_stop_the_good_executions_nor_the_worker_loop(
        scale_out_url: str, wf_name: str, caplog: pytest.LogCaptureFixture, bad: list[str]) -> None:
    BAD = bad
    caplog.set_level(logging.WARNING, "stepwork")
    one = create_step("one", lambda v: {"n": v["n"] + 1})
    two = create_step("two", lambda v: {"n": v["n"] * 10})
    wf = create_workflow({"name": wf_name, "retention_time": 600}, lambda inp: two(one(inp)))
    url = scale_out_url
    async with WorkflowEngine(url, concurrency=0, poll_interval=0.1) as producer:
        for tid in [*BAD, *GOOD]:
            await producer.run(wf, {"n": 1}, transaction_id=tid, queue=True, priority=5 if tid in BAD else 0)
        # (the worker below has not started: nothing is claimed yet; the bad ones come first by priority)
        await poison(url, BAD)
        async with WorkflowEngine(url, concurrency=2, poll_interval=0.1, lease_ttl=1.0) as worker:
            deadline = time.monotonic() + 30
            while True:
                seen = await rows(url)
                if all(seen.get(t, {}).get("state") == "done" for t in GOOD):
                    break
                assert time.monotonic() < deadline, f"good executions not finished: {seen}"
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.5)  # a few more claim and recovery rounds over the bad rows
            # The loops are alive: a run queued now is claimed and finished.
            await producer.run(wf, {"n": 2}, transaction_id="after", queue=True)
            deadline = time.monotonic() + 20
            while (await rows(url)).get("after", {}).get("state") != "done":
                assert time.monotonic() < deadline, f"a run queued after the poisoned rows was not finished\n" \
                                                    f"{caplog.text[-3000:]}"
                await asyncio.sleep(0.1)
            assert all(not t.done() for t in worker._tasks), "a loop of the worker engine ended"
    seen = await rows(url)
    outcome = {t: seen.get(t if "empty" not in t else "", {}).get("state") for t in BAD}
    print("bad rows:", outcome)
    for tid in BAD:
        key = "" if "empty" in tid else tid
        row = seen.get(key)
        assert row is not None, f"{tid}: the row disappeared"
        if "empty" in tid:  # an empty transaction id is a key like any other: it may simply run
            continue
        assert row["state"] != "done", f"{tid}: a poisoned row was driven to done: {row}"
        if "unknown" in tid:  # a workflow this process lacks is left alone, unfinished, for one that has it
            assert row["state"] not in ("failed", "reverted"), f"{tid}: a foreign execution was ended: {row}"
            continue
        assert row["state"] == "failed", f"{tid}: a corrupt row was not failed: {row}"
        assert (row["lease_owner"], row["queued_at"]) == (None, None), f"{tid}: still leased or queued: {row}"
        # Reported once (by whichever of the two engines failed it), not at every claim or recovery poll.
        reports = [r for r in caplog.records if getattr(r, "transaction_id", None) == tid]
        assert [r.levelno for r in reports] == [logging.ERROR], \
            f"{tid}: not reported exactly once: {[r.getMessage()[:200] for r in reports]}"
        message = reports[0].getMessage()
        assert "cannot be read from the database" in message and wf_name in message, message
        assert "JSONDecodeError" in message and "delete it" in message, message
