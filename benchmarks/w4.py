"""W4 stored on PostgreSQL (``W4-postgres``): 1,000 runs of W1's workflow, stored, started at once.

The in-memory W4 (:mod:`benchmarks.workloads`) with W1's stored workflow of :mod:`benchmarks.stored`
(``store=True``, no retention: a finished run's rows are deleted): one engine on a throwaway
PostgreSQL database, a warm-up of 20 sequential runs and a gather of 100, then 1,000 runs started
together with ``asyncio.gather`` and timed until the last one finishes. DBOS's ``bench.py W4 --db
postgres`` (1,000 async 10-step workflows in one ``asyncio.gather``) runs beside it.

Every checkpoint of every run is committed before its step's code runs, as in W1-postgres; with
many runs ready at once the store may put the checkpoints of several executions in one commit
(group commit, docs/decisions.md). After the timed runs an untimed pass of 200 concurrent runs is
counted (:mod:`benchmarks.counting`): ``commits_per_step`` below 1.1 (W1's floor for one run)
means commits were shared between executions, and ``checkpoints_per_commit`` says how many a
commit carried on average.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from benchmarks.counting import count_store
from benchmarks.stored import database, profiled, rows_left, stored_linear_wf
from benchmarks.workloads import STEPS, scaled, settle
from stepwork.engine.engine import WorkflowEngine

__all__ = ["W4_WORKLOADS"]

W4_RUNS = (20, 100, 1000)  # sequential warm-up, concurrent warm-up, timed (before --runs-scale)
W4_COUNT_RUNS = 200        # concurrent runs of the untimed counting pass


async def _gather(engine: WorkflowEngine, first: int, n: int) -> bool:
    results = await asyncio.gather(*(engine.run(stored_linear_wf, i) for i in range(first, first + n)))
    return len(results) == n and all(r.result == first + k + STEPS for k, r in enumerate(results))


async def w4_postgres(scale: float) -> dict[str, Any]:
    seq, warm, runs = (scaled(n, scale) for n in W4_RUNS)
    n_count = scaled(W4_COUNT_RUNS, scale)
    async with database("postgres") as (url, facts), WorkflowEngine(url) as engine:
        ok = True
        for i in range(seq):
            ok = (await engine.run(stored_linear_wf, i)).result == i + STEPS and ok
        ok = await _gather(engine, seq, warm) and ok
        settle()
        with profiled():
            t0 = time.perf_counter()
            ok = await _gather(engine, seq + warm, runs) and ok
            total_s = time.perf_counter() - t0
        async with count_store(engine) as counted:
            count_ok = await _gather(engine, seq + warm + runs, n_count)
        left = await rows_left(engine, stored_linear_wf.compiled.name)
    fields = counted.fields(n_count, STEPS)
    # checkpoints written (n + 1 per run of n steps) per commit the server counted
    per_commit = round(n_count * (STEPS + 1) / counted.commits, 2) if counted.commits > 0 else None
    return {"workload": "W4", "name": "fanout-throughput", "mode": "durable-postgres", "runs": runs,
            "steps_per_run": STEPS, "concurrency": runs, "total_s": total_s,
            "ok": ok and count_ok and left == 0, "retained": False, "rows_left": left,
            "warmup_runs": seq + warm, "checkpoints_per_commit": per_commit, **fields, **facts,
            "counting": counted.method,
            "note": f"W1's stored workflow (store=True, no retention); warm-up {seq} sequential runs and a gather of "
                    f"{warm}; {runs} runs started at once with asyncio.gather on one engine; statements and commits "
                    f"counted in a gather of {n_count} more runs (untimed)"}


W4_WORKLOADS: dict[str, Callable[[float], Coroutine[Any, Any, dict[str, Any]]]] = {"W4-postgres": w4_postgres}
