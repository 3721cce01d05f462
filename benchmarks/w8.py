"""W8 (issue 12): queued runs drained by 1, 2 and 4 worker processes on one PostgreSQL database.

A fresh PostgreSQL database per measurement (``stored.database``: created on the server of
``STEPWORK_BENCH_PG_URL``, dropped after). A producer engine (``WorkflowEngine(url, concurrency=0)``:
it queues, never claims) queues :data:`W8_RUNS` runs (20,000) of a 5-step workflow with
``engine.run(wf, i, transaction_id=f"w8-{i}", queue=True)``, *before* the clock starts. Then K
worker processes (``python -m benchmarks.w8 worker URL CONCURRENCY VARIANT``, each a
``WorkflowEngine(url)`` on the same database) are started and connected, still claiming nothing
(their engines start with ``concurrency=0``); once all K say they are ready, the clock starts and
each is told to go (its engine's concurrency is set to N and its claim loop woken, as
``stepwork worker --concurrency N`` sets it). So the figure is "drain a pre-filled queue of 20,000
runs". The end is the last execution's ``updated_at`` (its finishing write, stamped by the worker
that finished it: same host clock), once the producer sees all 20,000 finished (it polls a
``count(*)`` every 0.2 s); ``total_s`` = end - go.

Every result is checked afterwards (untimed) through the producer engine's public listing: the
workflow has a ``retention_time``, so each finished execution stays, and each must be ``done`` with
step 5's output ``i + 5`` for transaction ``w8-{i}``.

Variants: ``W8-1w``, ``W8-2w``, ``W8-4w``: trivial sync steps (each returns input + 1);
``W8-io-1w`` ... ``W8-io-4w``: each step first awaits ``asyncio.sleep(0.005)`` (standing for a call to
another service), so a run waits 25 ms on "I/O". Per-worker concurrency: ``W8_CONCURRENCY``
(default :data:`DEFAULT_CONCURRENCY`; the README says what was tried).

The line carries, besides the peers' fields: ``workers``, ``concurrency_per_worker``,
``enqueue_per_s`` (the producer's untimed queuing rate), ``claimed_per_worker``, ``worker_cpu_s``
(each worker process's user + system CPU seconds between go and the end), ``postgres_cpu_s`` (the
CPU seconds of the server processes connected to this database in the same window, from ``/proc``;
``postgres_all_cpu_s``: of every ``postgres`` process, other sessions' included), ``machine_busy`` (the
fraction of all CPUs busy in the window, from ``/proc/stat``), ``cpus``, ``loadavg_before``.

DBOS's counterpart is ``benchmarks/dbos_w8.py`` (run with the DBOS venv's Python; see run.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from benchmarks.counting import count_store
from benchmarks.machine import cpu_busy, own_cpu, postgres_cpu
from stepwork import StepResponse, WorkflowResponse, create_step, create_workflow
from stepwork.engine.engine import WorkflowEngine

__all__ = ["DEFAULT_CONCURRENCY", "W8_RUNS", "W8_WORKLOADS", "dbos_command", "w8_summary"]

W8_RUNS = 20_000
STEPS = 5
IO_S = 0.005                # the I/O variant: each step awaits this long first
DEFAULT_CONCURRENCY = 32    # queued runs in flight per worker (W8_CONCURRENCY overrides)
RETENTION_S = 3600.0
POLL_S = 0.2                # how often the producer counts finished executions
SCALING_GOAL = 3.0          # issue 12: 4 workers >= 3x one
WORKERS = (1, 2, 4)


def _inc(n: int) -> StepResponse[int, int]:
    return StepResponse(n + 1)


async def _inc_io(n: int) -> StepResponse[int, int]:
    await asyncio.sleep(IO_S)
    return StepResponse(n + 1)


_trivial_steps = [create_step(f"w8-step-{i + 1}", _inc) for i in range(STEPS)]
_io_steps = [create_step(f"w8-io-step-{i + 1}", _inc_io) for i in range(STEPS)]


def _chain(steps: list[Any]) -> Callable[[Any], WorkflowResponse[Any]]:
    def compose(input: Any) -> WorkflowResponse[Any]:
        v = input
        for s in steps:
            v = s(v)
        return WorkflowResponse(v)
    return compose


FLOWS = {
    "trivial": create_workflow({"name": "w8-five", "store": True, "retention_time": RETENTION_S},
                               _chain(_trivial_steps)),
    "io": create_workflow({"name": "w8-five-io", "store": True, "retention_time": RETENTION_S}, _chain(_io_steps)),
}
LAST_STEP = {"trivial": f"w8-step-{STEPS}", "io": f"w8-io-step-{STEPS}"}


def parse(w: str) -> tuple[str, int]:
    """``W8-2w`` -> ("trivial", 2); ``W8-io-4w`` -> ("io", 4)."""
    parts = w.split("-")
    return ("io" if parts[1] == "io" else "trivial"), int(parts[-1].rstrip("w"))


# ------------------------------------------------------------------------------ worker process
async def worker_main(url: str, concurrency: int) -> None:
    """One worker process: an engine on ``url`` claiming nothing until "go" on stdin, then
    ``concurrency`` queued runs at once until "stop"; prints one JSON line of its figures."""
    loop = asyncio.get_running_loop()
    async with WorkflowEngine(url, concurrency=0) as engine:
        claims = [0, 0]  # claim statements sent, and how many of them claimed nothing
        claim_queued = engine.store.claim_queued

        async def counted_claim(*args: Any, **kwargs: Any) -> Any:
            got = await claim_queued(*args, **kwargs)
            claims[0] += 1
            claims[1] += not got
            return got
        engine.store.claim_queued = counted_claim  # type: ignore[method-assign]
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        async with contextlib.AsyncExitStack() as stack:
            counted = await stack.enter_async_context(count_store(engine)) if os.environ.get("W8_COUNT") else None
            cpu0 = own_cpu()
            engine.queue.concurrency = concurrency  # what `stepwork worker --concurrency N` sets
            engine.queue.wake.set()
            await loop.run_in_executor(None, sys.stdin.readline)
            cpu = own_cpu() - cpu0
            claimed = engine.queue.claimed
        extra: dict[str, Any] = {}
        if counted is not None and claimed:
            extra = counted.per(claimed, "run", kinds=True)
    print(json.dumps({"claimed": claimed, "cpu_s": round(cpu, 2), "claim_calls": claims[0],
                      "empty_claims": claims[1], **extra}), flush=True)


# ---------------------------------------------------------------------------- the measurement
async def _count_finished(conn: Any, workflow_id: str) -> int:
    cur = await conn.execute("SELECT count(*) FROM workflow_execution WHERE workflow_id = %s "
                             "AND state IN ('done', 'failed', 'reverted', 'timeout', 'cancelled')", (workflow_id,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _backends(conn: Any) -> set[int]:
    """The pids of the server processes connected to this database (the workers', the producer's)."""
    cur = await conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    return {int(r[0]) for r in await cur.fetchall()}


async def measure(variant: str, workers: int, concurrency: int, runs: int) -> dict[str, Any]:
    import psycopg

    from benchmarks.stored import database

    wf = FLOWS[variant]
    wid = wf.name
    async with database("postgres") as (url, facts), WorkflowEngine(url, concurrency=0) as producer:
        t = time.perf_counter()
        for i in range(runs):
            await producer.run(wf, i, transaction_id=f"w8-{i}", queue=True)
        enqueue_s = time.perf_counter() - t
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.w8", "worker", url, str(concurrency),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE) for _ in range(workers)]
        try:
            for p in procs:
                assert p.stdout is not None
                line = await asyncio.wait_for(p.stdout.readline(), 60)
                if line.strip() != b"ready":
                    raise RuntimeError(f"a W8 worker did not start ({line!r})")
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
            loadavg = os.getloadavg()
            backends = await _backends(conn)
            pg0, busy0, own0 = postgres_cpu(), cpu_busy(), postgres_cpu(backends)
            t0 = time.time()
            for p in procs:
                assert p.stdin is not None
                p.stdin.write(b"go\n")
                await p.stdin.drain()
            deadline = t0 + 3600
            finished = 0
            while time.time() < deadline:
                finished = await _count_finished(conn, wid)
                if finished >= runs:
                    break
                await asyncio.sleep(POLL_S)
            detected = time.time()
            pg1, busy1 = postgres_cpu(), cpu_busy()
            backends |= await _backends(conn)
            own1 = postgres_cpu(backends)
            cur = await conn.execute("SELECT extract(epoch FROM max(updated_at)) FROM workflow_execution "
                                     "WHERE workflow_id = %s", (wid,))
            row = await cur.fetchone()
            end = float(row[0]) if row and row[0] is not None else detected
            await conn.close()
            stats = []
            for p in procs:
                assert p.stdin is not None and p.stdout is not None
                p.stdin.write(b"stop\n")
                await p.stdin.drain()
            for p in procs:
                assert p.stdout is not None
                out = await asyncio.wait_for(p.stdout.read(), 120)
                await p.wait()
                last = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
                stats.append(json.loads(last[-1]) if last else {})
        finally:
            for p in procs:
                if p.returncode is None:
                    p.kill()
                    await p.wait()
        # the check: every run done with input + 5 (untimed)
        execs = await producer.list_workflow_executions({"workflow_id": wid}, take=runs + 10)
        ok = len(execs) == runs and finished >= runs
        for e in execs:
            i = int(e.transaction_id.removeprefix("w8-"))
            if e.state != "done" or (e.context or {}).get("data", {}).get("invoke", {}).get(
                    LAST_STEP[variant]) != i + STEPS:
                ok = False
                break
    pg_cpu = sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items())
    own_pg = sum(v - own0.get(pid, 0.0) for pid, v in own1.items())
    busy = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    total = end - t0
    return {
        "mode": "durable-postgres", "workload": f"W8{'-io' if variant == 'io' else ''}-{workers}w",
        "name": "queue-drain" + ("-io" if variant == "io" else ""), "runs": runs, "steps_per_run": STEPS,
        "concurrency": workers * concurrency, "workers": workers, "concurrency_per_worker": concurrency,
        "total_s": total, "ok": ok, **facts, "step_io_s": IO_S if variant == "io" else 0.0,
        "enqueue_per_s": round(runs / enqueue_s, 1), "detected_after_s": round(detected - t0, 3),
        "claimed_per_worker": [s.get("claimed") for s in stats],
        "claim_calls_per_worker": [s.get("claim_calls") for s in stats],
        "empty_claims_per_worker": [s.get("empty_claims") for s in stats],
        **({"counted": [{k: v for k, v in s.items() if k.endswith("_per_run")} for s in stats]}
           if os.environ.get("W8_COUNT") else {}),
        "worker_cpu_s": [s.get("cpu_s") for s in stats], "postgres_cpu_s": round(own_pg, 2),
        "postgres_all_cpu_s": round(pg_cpu, 2),
        "machine_busy": round(busy, 3), "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in loadavg],
    }


def _workload(variant: str, workers: int) -> Callable[[float], Coroutine[Any, Any, dict[str, Any]]]:
    async def run(scale: float) -> dict[str, Any]:
        from benchmarks.databases import pg_problem
        from benchmarks.stored import Unavailable

        problem = pg_problem()
        if problem:
            raise Unavailable(problem)
        concurrency = int(os.environ.get("W8_CONCURRENCY") or DEFAULT_CONCURRENCY)
        return await measure(variant, workers, concurrency, max(1, round(W8_RUNS * scale)))
    return run


W8_WORKLOADS = {f"W8{'-io' if v == 'io' else ''}-{k}w": _workload(v, k) for v in ("trivial", "io") for k in WORKERS}


# ------------------------------------------------------------------------------- for run.py
def dbos_command(python: str, w: str, scale: float) -> list[str]:
    """The command that runs DBOS's counterpart of ``w`` (``benchmarks/dbos_w8.py``)."""
    from pathlib import Path

    variant, workers = parse(w)
    script = Path(__file__).resolve().parent / "dbos_w8.py"
    return [python, str(script), "--workers", str(workers), "--variant", variant,
            "--runs", str(max(1, round(W8_RUNS * scale)))]


def w8_summary(records: list[dict[str, Any]], workloads: list[str]) -> str:
    """Runs/s per worker count (medians over repetitions) and the scaling factors, per engine."""
    import statistics

    def med(vals: list[float]) -> float | None:
        return statistics.median(vals) if vals else None

    out = ["W8: a pre-filled queue of runs drained by K worker processes on one PostgreSQL "
           "(runs/s, medians over repetitions)"]
    for variant in ("", "-io"):
        ws = [w for w in workloads if w.startswith(f"W8{variant}-") and parse(w)[0] == ("io" if variant else "trivial")]
        if not ws:
            continue
        for peer in ("stepwork", "dbos"):
            rates: dict[int, float] = {}
            cells = []
            for w in ws:
                recs = [r for r in records if r.get("workload") == w
                        and (r.get("peer") == "stepwork") == (peer == "stepwork")]
                m = med([float(r["runs_per_s"]) for r in recs if r.get("ok")])
                bad = sum(1 for r in recs if not r.get("ok"))
                if m is not None:
                    rates[parse(w)[1]] = m
                conc = sorted({r.get("concurrency_per_worker") for r in recs if r.get("ok")}, key=str)
                cells.append(f"{parse(w)[1]} worker(s): "
                             + ("-" if m is None else f"{m:,.1f} runs/s (n={len(recs) - bad}, c={conc})")
                             + (f" [{bad} NOT OK]" if bad else ""))
            if not any(rates.values()) and peer == "dbos":
                continue
            scaling = []
            for k in (2, 4):
                if k in rates and 1 in rates:
                    f = rates[k] / rates[1]
                    met = "met" if f >= SCALING_GOAL else "NOT met"
                    goal = f" (goal >= {SCALING_GOAL:g}x: {met})" if k == 4 else ""
                    scaling.append(f"{k} vs 1: {f:.2f}x{goal}")
            out.append(f"  W8{variant} {peer}: " + "; ".join(cells))
            if scaling:
                out.append(f"  W8{variant} {peer} scaling: " + "; ".join(scaling))
    return "\n".join(out)


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    asyncio.run(worker_main(sys.argv[2], int(sys.argv[3])))
