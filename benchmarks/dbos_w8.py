#!/usr/bin/env python3
# (DBOS is not installed in stepwork's venv, where mypy checks this file: its import and decorators are untyped there.)
# mypy: disable-error-code="import-not-found,untyped-decorator"
"""W8 for DBOS Transact (3.4.0): a pre-filled DBOS queue of runs drained by K worker processes.

Run with the DBOS venv's Python (``/work/peers-scratch/venv/bin/python``; ``benchmarks.run W8-2w
--with-dbos`` does). Our own code on DBOS's public API, the counterpart of ``benchmarks/w8.py``:

- The system database is ``DBOS_W8_PG_URL`` (default ``dbos_w8`` on the server ``make test`` starts,
  the server stepwork's W8 uses; not ``dbos_bench``, which ``shared/peers/dbos/bench.py`` empties at
  every start), dropped and made again (``DBOS.reset_system_database``) at the start of every
  measurement.
- This process (the producer) launches DBOS listening to no queue (``DBOS.listen_queues([])``),
  registers the queue ``w8`` (``DBOS.register_queue``, database-backed, with ``worker_concurrency=0``
  so nobody dequeues yet, and ``polling_interval_sec``), and enqueues the runs with
  ``queue.enqueue(w8_five, i)`` under workflow ids ``w8-<i>`` (8 threads; untimed).
- K worker processes (this script with ``--worker``, each its own ``executor_id``) launch DBOS and
  listen to ``w8``; once all say they are ready (and their queue threads had time to find the
  queue), the clock starts and the producer sets the queue's ``worker_concurrency`` to N
  (``queue.set_worker_concurrency``): each worker reads it at its next poll and dequeues.
- The end is the last workflow's ``updated_at`` once all are ``SUCCESS`` (the producer counts them
  every 0.2 s), as stepwork's; every output is then checked with ``DBOS.list_workflows``
  (``i + 5``).

The workflow: 5 ``@DBOS.step()`` functions, each returns input + 1 (``--variant io``: async steps
that first await ``asyncio.sleep(0.005)``, in an async workflow). One JSON line in the peers' shape.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from typing import Any

from dbos import DBOS, DBOSConfig, SetWorkflowID

# Run as a script by the DBOS venv's Python: the repository root makes ``benchmarks`` importable
# (its machine figures are standard library only).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.machine import cpu_busy, own_cpu, postgres_cpu

STEPS = 5
IO_S = 0.005
RUNS = 20_000
QUEUE = "w8"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/dbos_w8"
DEFAULT_CONCURRENCY = 10  # worker_concurrency (10 and 32 gave the same runs/s; 10 needs fewer connections)
DEFAULT_POLL_S = 0.05   # DBOS's default is 1.0 s: with it a worker dequeues at most once a second
POLL_S = 0.2


def _inc_step(name: str) -> Any:
    @DBOS.step(name=name)
    def inc(n: int) -> int:
        return n + 1
    return inc


def _inc_io_step(name: str) -> Any:
    @DBOS.step(name=name)
    async def inc(n: int) -> int:
        await asyncio.sleep(IO_S)
        return n + 1
    return inc


TRIVIAL = [_inc_step(f"w8_step_{i + 1}") for i in range(STEPS)]
IO = [_inc_io_step(f"w8_io_step_{i + 1}") for i in range(STEPS)]


@DBOS.workflow(name="w8_five")
def w8_five(n: int) -> int:
    for step in TRIVIAL:
        n = step(n)
    return n


@DBOS.workflow(name="w8_five_io")
async def w8_five_io(n: int) -> int:
    for step in IO:
        n = await step(n)
    return n


def config(url: str, executor: str, pool: int) -> DBOSConfig:
    return {"name": "w8-bench", "system_database_url": url, "log_level": "WARNING",
            "executor_id": executor, "sys_db_pool_size": pool}



def worker(url: str, index: int, pool: int) -> None:
    DBOS(config=config(url, f"w8-worker-{index}", pool))
    DBOS.listen_queues([QUEUE])
    DBOS.launch()
    print("ready", flush=True)
    sys.stdin.readline()  # "go"
    cpu0 = own_cpu()
    sys.stdin.readline()  # "stop"
    print(json.dumps({"cpu_s": round(own_cpu() - cpu0, 2)}), flush=True)
    DBOS.destroy()




def _backends(engine: Any) -> set[int]:
    """The pids of the server processes connected to this database."""
    import sqlalchemy as sa

    with engine.connect() as c:
        return {int(r[0]) for r in c.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))}


def measure(url: str, variant: str, workers: int, concurrency: int, poll: float, runs: int) -> dict[str, Any]:
    import sqlalchemy as sa

    # connections per worker: DBOS's default pool (20), less for a small worker_concurrency (the server's
    # max_connections is shared with everything else on it)
    pool = max(10, min(20, concurrency + 5))
    DBOS(config=config(url, "w8-producer", 20))
    DBOS.reset_system_database()
    DBOS.listen_queues([])  # the producer dequeues nothing
    DBOS.launch()
    wf: Any = w8_five_io if variant == "io" else w8_five
    name = "w8_five_io" if variant == "io" else "w8_five"
    queue = DBOS.register_queue(QUEUE, worker_concurrency=0, polling_interval_sec=poll)

    def enqueue(i: int) -> None:
        with SetWorkflowID(f"w8-{i}"):
            queue.enqueue(wf, i)

    t = time.perf_counter()
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(enqueue, range(runs)))
    enqueue_s = time.perf_counter() - t
    env = {**os.environ}
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(k), "--pool", str(pool)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for k in range(workers)]
    engine = sa.create_engine(url)
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"a DBOS W8 worker did not start ({line!r})")
        time.sleep(2.5)  # their queue threads find the queue (DBOS checks for queues every 1 s)
        loadavg = os.getloadavg()
        backends = _backends(engine)
        pg0, busy0, own0 = postgres_cpu(), cpu_busy(), postgres_cpu(backends)
        t0 = time.time()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        queue.set_worker_concurrency(concurrency)
        finished = 0
        with engine.connect() as c:
            while time.time() < t0 + 3600:
                finished = int(c.execute(sa.text(
                    "SELECT count(*) FROM dbos.workflow_status WHERE name = :n AND status IN "
                    "('SUCCESS', 'ERROR')"), {"n": name}).scalar() or 0)
                c.commit()
                if finished >= runs:
                    break
                time.sleep(POLL_S)
            detected = time.time()
            pg1, busy1 = postgres_cpu(), cpu_busy()
            backends |= _backends(engine)
            own1 = postgres_cpu(backends)
            last = c.execute(sa.text("SELECT max(updated_at) FROM dbos.workflow_status WHERE name = :n"),
                             {"n": name}).scalar()
        end = float(last) / 1000 if last is not None else detected
        stats = []
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("stop\n")
            p.stdin.flush()
        for p in procs:
            out, _ = p.communicate(timeout=120)
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            stats.append(json.loads(lines[-1]) if lines else {})
        executors = {}
        with engine.connect() as c:
            for ex_id, n in c.execute(sa.text("SELECT executor_id, count(*) FROM dbos.workflow_status "
                                              "WHERE name = :n GROUP BY executor_id ORDER BY 1"), {"n": name}):
                executors[str(ex_id)] = int(n)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        engine.dispose()
    ok = finished >= runs
    done = DBOS.list_workflows(name=name, load_input=False, load_output=True)
    if len(done) != runs:
        ok = False
    for st in done:
        i = int(st.workflow_id.removeprefix("w8-"))
        if st.status != "SUCCESS" or st.output != i + STEPS:
            ok = False
            break
    DBOS.destroy()
    total = end - t0
    pg_cpu = sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items())
    own_pg = sum(v - own0.get(pid, 0.0) for pid, v in own1.items())
    busy = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    return {
        "peer": "dbos-transact-py", "peer_version": version("dbos"),
        "runtime": f"cpython {platform.python_version()}", "mode": "durable-postgres",
        "workload": f"W8{'-io' if variant == 'io' else ''}-{workers}w",
        "name": "queue-drain" + ("-io" if variant == "io" else ""), "runs": runs, "steps_per_run": STEPS,
        "concurrency": workers * concurrency, "workers": workers, "concurrency_per_worker": concurrency,
        "polling_interval_s": poll, "sys_db_pool_size": pool, "total_s": round(total, 4), "ok": ok,
        "runs_per_s": round(runs / total, 1), "us_per_run": round(total * 1e6 / runs, 2),
        "us_per_step": round(total * 1e6 / (runs * STEPS), 2), "step_io_s": IO_S if variant == "io" else 0.0,
        "enqueue_per_s": round(runs / enqueue_s, 1), "detected_after_s": round(detected - t0, 3),
        "claimed_per_worker": list(executors.values()), "worker_cpu_s": [s.get("cpu_s") for s in stats],
        "postgres_cpu_s": round(own_pg, 2), "postgres_all_cpu_s": round(pg_cpu, 2),
        "machine_busy": round(busy, 3), "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in loadavg],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--variant", choices=["trivial", "io"], default="trivial")
    ap.add_argument("--runs", type=int, default=RUNS)
    ap.add_argument("--concurrency", type=int,
                    default=int(os.environ.get("W8_DBOS_CONCURRENCY") or DEFAULT_CONCURRENCY),
                    help="worker_concurrency of the queue (W8_DBOS_CONCURRENCY)")
    ap.add_argument("--poll", type=float, default=float(os.environ.get("W8_DBOS_POLL") or DEFAULT_POLL_S),
                    help="polling_interval_sec of the queue (W8_DBOS_POLL)")
    ap.add_argument("--pg-url", default=os.environ.get("DBOS_W8_PG_URL", DEFAULT_PG_URL))
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--pool", type=int, default=20, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        worker(args.pg_url, args.worker, args.pool)
        return 0
    rec = measure(args.pg_url, args.variant, args.workers, args.concurrency, args.poll, args.runs)
    print(json.dumps(rec), flush=True)
    return 0 if rec["ok"] else 1


if __name__ == "__main__":
    threading.current_thread().name = "w8"
    sys.exit(main())
