"""The chaos soak of issue 12 (R17): ``make chaos``, or ``python -m tests.workers.chaos``.

Three worker processes (:mod:`tests.workers.worker_app`) run ``CHAOS_WORKFLOWS`` workflows (5,000 by
default: 40 % five-step, 20 % compensating, 20 % with durable retry timers, 20 % with an async step
answered by another process) plus a scheduled workflow, on a PostgreSQL server of the soak's own
(:class:`tests.workers.harness.PrivatePostgres`), which is restarted every 5–40 s (``pg_ctl stop -m
fast`` or ``immediate``, chosen at random, down 0.5–2 s). Progress is printed every 5 s; at the end
the harness's invariants are checked and printed; the exit status is 1 if any is violated.

Environment: ``CHAOS_WORKFLOWS`` (5000), ``CHAOS_SEED`` (12), ``CHAOS_RESTART_MIN`` / ``_MAX``
(5 / 40 s), ``CHAOS_TIMEOUT`` (3600 s), ``CHAOS_STALL`` (stop waiting after that many seconds without
a workflow finishing: 120), ``CHAOS_CONCURRENCY`` (runs in flight per worker, 25),
``CHAOS_SCALE`` (step durations, as in the tests: 1.0), ``CHAOS_DIR`` (journals and logs; a temporary
directory by default, kept when something fails).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from tests.workers.harness import (
    FINISHED,
    Fleet,
    PrivatePostgres,
    check,
    private_postgres_unavailable,
    settled,
)

TICKS = 20


def shares(total: int, workers: int = 3) -> list[str]:
    """The ``--runs`` of each worker: ``total`` runs split between them and between the kinds."""
    specs = []
    for w in range(workers):
        n = total // workers + (1 if w < total % workers else 0)
        slow, fail, retry = n * 4 // 10, n * 2 // 10, n * 2 // 10
        specs.append(f"slow={slow},fail={fail},retry={retry},async={n - slow - fail - retry}")
    return specs


async def soak() -> int:
    total = int(os.environ.get("CHAOS_WORKFLOWS", "5000"))
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "12")))
    low, high = float(os.environ.get("CHAOS_RESTART_MIN", "5")), float(os.environ.get("CHAOS_RESTART_MAX", "40"))
    timeout = float(os.environ.get("CHAOS_TIMEOUT", "3600"))
    concurrency = int(os.environ.get("CHAOS_CONCURRENCY", "25"))
    scale = float(os.environ.get("CHAOS_SCALE", "1.0"))
    stall = float(os.environ.get("CHAOS_STALL", "120"))
    reason = private_postgres_unavailable()
    if reason:
        print(f"chaos: cannot run a PostgreSQL server of its own: {reason}")
        return 2
    directory = Path(os.environ.get("CHAOS_DIR") or tempfile.mkdtemp(prefix="stepwork-chaos-"))
    server = PrivatePostgres().start()
    fleet: Fleet | None = None
    try:
        url = server.create_database("chaos")
        fleet = Fleet(url, directory, lease_ttl=2.0, poll_interval=0.2, tick_interval=1.0, tick_count=TICKS,
                      scale=scale)
        for i, spec in enumerate(shares(total)):
            fleet.start(i, spec, concurrency=concurrency)
        await fleet.wait_ready()
        print(f"chaos: {total} workflows over 3 workers, PostgreSQL on port {server.port} restarted every "
              f"{low:g}-{high:g} s (seed {os.environ.get('CHAOS_SEED', '12')}), journals in {directory}", flush=True)
        started = time.monotonic()
        fleet.go()
        next_restart = time.monotonic() + rng.uniform(low, high)
        next_report = time.monotonic() + 5
        progress, progress_at = -1, time.monotonic()
        while True:
            now = time.monotonic()
            if now > started + timeout:
                print(f"chaos: not settled after {timeout:g} s", flush=True)
                break
            if now >= next_restart:
                mode, down = rng.choice(["fast", "immediate"]), rng.uniform(0.5, 2.0)
                try:
                    fleet.disruptions.append(await asyncio.to_thread(server.restart, mode, down))
                finally:
                    await asyncio.to_thread(server.ensure_running)
                print(f"chaos: [{now - started:6.1f} s] PostgreSQL restarted ({mode}, down {down:.1f} s)", flush=True)
                next_restart = time.monotonic() + rng.uniform(low, high)
            try:
                done, seen = await settled(fleet)
            except Exception as exc:  # the server is restarting
                print(f"chaos: [{now - started:6.1f} s] cannot look: {type(exc).__name__}", flush=True)
                await asyncio.sleep(1)
                continue
            if done:
                break
            finished = sum(1 for e in seen.executions if e.state in FINISHED and e.workflow_id != "harness-tick")
            if finished != progress:
                progress, progress_at = finished, now
            elif now - progress_at > stall:
                print(f"chaos: no progress for {stall:g} s: checking what is stuck", flush=True)
                break
            if now >= next_report:
                print(f"chaos: [{now - started:6.1f} s] {finished}/{len(fleet.expected)} finished, "
                      f"{len(seen.executions) - finished} other executions, {server.restarts} restarts", flush=True)
                next_report = now + 5
            await asyncio.sleep(0.5)
        elapsed = time.monotonic() - started
        _, seen = await settled(fleet)
        journal = fleet.journal()
        report = check(seen, journal, expected=fleet.expected, tick_count=fleet.tick_count,
                       disruptions=fleet.disruptions, alive=fleet.alive_pids())
        report.stats.update(elapsed_s=round(elapsed, 1), postgres_restarts=server.restarts)
        print(report.format(journal), flush=True)
        print(f"chaos: {'OK' if report.ok else 'INVARIANTS VIOLATED'}: {len(fleet.expected)} workflows, "
              f"{server.restarts} PostgreSQL restarts, {elapsed:.1f} s", flush=True)
        if not report.ok:
            print(fleet.outputs(20))
        await fleet.stop_all()
        return 0 if report.ok else 1
    finally:
        if fleet is not None:
            fleet.close()
        server.close()


def main() -> None:
    # The engine that reads the database here sees orphans (leases that ran out during an outage) of
    # workflows it does not define, and says so: expected, and the workers take them over.
    logging.getLogger("stepwork").setLevel(logging.ERROR)
    sys.exit(asyncio.run(soak()))


if __name__ == "__main__":
    main()
