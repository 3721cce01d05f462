"""Finding 1: a short database outage must not strand an execution in a live process.

Engine A reaches PostgreSQL through a TCP proxy; engine B goes to it directly; both stay alive. A
step of A's run is running when the proxy is cut (open connections reset, new ones refused), so the
checkpoint after it fails. Once the database is reachable again the execution must be driven to its
end within about one lease, by A or by B.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import pytest

from stepwork import StepContext, WorkflowEngine, create_step, create_workflow
from tests.engine.faults.harness import TcpProxy, wait_for_end, with_port

LEASE_TTL = 5.0
# Short enough that A's lease cannot expire during the outage (A renews every LEASE_TTL / 3; a
# renewal due during the cut fails, the next one after it succeeds): the execution is stranded by
# the failed checkpoint, not recovered by B because the lease ran out meanwhile.
OUTAGE = 1.0


@pytest.mark.slow
async def test_an_execution_interrupted_by_a_short_outage_is_finished_once_the_database_is_back(
        private_pg_url: str, wf_name: str) -> None:
    calls: list[str] = []
    running = asyncio.Event()
    gate = asyncio.Event()

    async def slow(value: Any, ctx: StepContext) -> str:
        calls.append(ctx.step_name)
        running.set()
        await gate.wait()  # the test cuts the database meanwhile
        return "s2-out"

    s1 = create_step("s1", lambda v, ctx: calls.append(ctx.step_name) or "s1-out")
    s2 = create_step("s2", slow)
    s3 = create_step("s3", lambda v, ctx: calls.append(ctx.step_name) or "s3-out")
    wf = create_workflow({"name": wf_name, "retention_time": 600}, lambda inp: s3(s2(s1(inp))))
    tid = "outage-1"

    target = urlsplit(private_pg_url)
    async with TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy, \
            WorkflowEngine(with_port(private_pg_url, proxy.port), lease_ttl=LEASE_TTL, poll_interval=0.1) as a, \
            WorkflowEngine(private_pg_url, lease_ttl=LEASE_TTL, poll_interval=0.1) as b:
        run = asyncio.create_task(a.run(wf, 1, transaction_id=tid, throw_on_error=False))
        try:
            await asyncio.wait_for(running.wait(), 10)
            await proxy.cut()
            gate.set()  # s2 returns while the database is away: its checkpoint cannot be written
            await asyncio.sleep(OUTAGE)
            await proxy.restore()
            states = await wait_for_end(b, wf_name, tid, timeout=2 * LEASE_TTL + 3)
            assert states == ["done"], f"{OUTAGE}s outage, {2 * LEASE_TTL + 3}s after it ended: {states}"
            assert calls.count("s1") == 1  # a completed step never runs again
            assert calls[-1] == "s3"
        finally:
            # A's call either returned (it finished the run or gave up with an error) or is still
            # retrying: give it a moment, then stop it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(run, 5)
