"""R06, graceful shutdown of a worker: SIGTERM a worker process (``--grace``: its engine's
``stop(grace=)``, as ``stepwork worker`` does on SIGTERM) while it drives queued runs.

- With a grace period long enough, it stops claiming, lets its runs in flight finish (in this
  process), exits 0, and the rest of the queue is drained by the other worker.
- With a grace period that runs out while a step is still running, the run is put back in the
  queue: another worker claims it promptly (well before the lease, 10 s here, could have expired) and
  invokes the interrupted step again under the same idempotency key; everything finishes once.

The workers' lease is long (10 s) so that a takeover through the queue is told apart from one after a
lease expiry. Timing bounds are loose (seconds): the machine is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.workers.harness import Fleet, assert_report, verify
from tests.workers.test_queued_faults import PRODUCER, in_the_middle, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

LEASE_TTL = 10.0


async def two_workers(make_fleet: Callable[..., Fleet], queued: str, grace: float, scale: float) -> Fleet:
    fleet = make_fleet(lease_ttl=LEASE_TTL, scale=scale)
    fleet.start(0, "", extra=("--engine-concurrency", "3", "--local-finish", "--grace", str(grace)))
    fleet.start(1, "", extra=("--engine-concurrency", "3", "--local-finish"))
    fleet.start(PRODUCER, queued, extra=("--queue", "--engine-concurrency", "0", "--local-finish"))
    await fleet.wait_ready()
    fleet.go()
    return fleet


def in_flight(journal: list[dict[str, Any]], pid: int, at: float) -> dict[str, dict[str, Any]]:
    """The runs ``pid`` had begun and not finished at time ``at``: tid -> its last step start."""
    begun: dict[str, dict[str, Any]] = {}
    done = set()
    for line in journal:
        if line["pid"] != pid or line["t"] > at:
            continue
        if line["event"] == "start":
            begun[line["tid"]] = line
        elif line["event"] == "finish":
            done.add(line["tid"])
    return {tid: line for tid, line in begun.items() if tid not in done}


async def test_sigterm_with_enough_grace_finishes_the_runs_in_flight_and_claims_no_more(
        make_fleet: Callable[..., Fleet]) -> None:
    fleet = await two_workers(make_fleet, "slow=10", grace=20.0, scale=1.0)
    await until(in_the_middle(fleet, 0), 30, "worker 0 in the middle of a queued run", fleet)
    pid = fleet.pid(0)
    term = fleet.terminate(0)
    code = await fleet.wait_exit(0, 30)
    assert code == 0, fleet.output(0)
    journal = fleet.journal()
    flying = in_flight(journal, pid, term.t0)
    assert flying, "worker 0 had nothing in flight at SIGTERM (the scenario proves nothing)"
    late_claims = [line for line in journal if line["pid"] == pid and line["t"] > term.t0
                   and line["event"] == "start" and line["step"] == "slow-1" and line["tid"] not in flying]
    assert not late_claims, f"worker 0 claimed runs after SIGTERM: {late_claims}"
    finished_here = {line["tid"] for line in journal if line["event"] == "finish" and line["pid"] == pid}
    assert set(flying) <= finished_here, (
        f"runs in flight at SIGTERM not finished by worker 0 within its grace: {set(flying) - finished_here}")
    assert term.t1 - term.t0 < 15, f"worker 0 took {term.t1 - term.t0:.1f}s to stop"
    report, _, journal = await verify(fleet, timeout=60)
    print(report.format())
    assert_report(report, journal, fleet)
    others = {line["pid"] for line in journal if line["event"] == "finish"} - {pid}
    assert others, "the other worker drained nothing"
    await fleet.stop_all()


async def test_sigterm_whose_grace_runs_out_puts_the_run_back_for_another_worker_at_once(
        make_fleet: Callable[..., Fleet]) -> None:
    # Steps of 0.8-2 s (scale 4) and a grace of 0.3 s: the steps in flight at SIGTERM cannot end in time.
    fleet = await two_workers(make_fleet, "slow=4", grace=0.3, scale=4.0)
    await until(in_the_middle(fleet, 0), 40, "worker 0 in the middle of a queued run", fleet)
    pid, other = fleet.pid(0), fleet.pid(1)
    term = fleet.terminate(0)
    code = await fleet.wait_exit(0, 15)
    assert code == 0, fleet.output(0)
    assert term.t1 - term.t0 < 8, f"worker 0 took {term.t1 - term.t0:.1f}s to stop with a 0.3 s grace"
    journal = fleet.journal()
    cut = {tid: line for tid, line in in_flight(journal, pid, term.t1).items()
           if not any(x["pid"] == pid and x["event"] in ("return", "raise") and x["key"] == line["key"]
                      and x["attempt"] == line["attempt"] for x in journal)}
    assert cut, "no step of worker 0 was cut short by the end of its grace (the scenario proves nothing)"

    def taken_over() -> bool:
        lines = fleet.journal()
        return all(any(x["event"] == "start" and x["pid"] == other and x["key"] == line["key"] for x in lines)
                   for line in cut.values())
    await until(taken_over, 30, "worker 1 invoking the steps cut short again", fleet)
    journal = fleet.journal()
    for tid, line in cut.items():
        again = next(x for x in journal if x["event"] == "start" and x["pid"] == other and x["key"] == line["key"])
        delay = again["t"] - term.t1
        # Through the queue, not after the lease (10 s from its last renewal) ran out.
        assert delay < LEASE_TTL - 3, f"{tid}: {line['step']} invoked again {delay:.1f}s after worker 0 stopped"
        assert again["attempt"] > line["attempt"], (line, again)
    report, _, journal = await verify(fleet, timeout=60)
    print(report.format())
    assert_report(report, journal, fleet)
    await fleet.stop_all()
