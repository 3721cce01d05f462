"""Scale-out on PostgreSQL (issue 12): three worker processes on one database, and faults.

Each scenario runs three ``tests.workers.worker_app`` processes (lease 2 s, poll 0.2 s) on a fresh
database of a PostgreSQL server of the harness's own (see :mod:`tests.workers.harness`), each starting
its share of runs (five slow steps; a failure that compensates; a retry on a durable timer; an async
step answered by another process) with a scheduled workflow registered in all three. After the fault,
the harness waits for everything to finish and checks the invariants (:func:`harness.check`): every
execution terminal exactly once, no completed step invoked again (only the one in flight at a crash,
under its idempotency key), no tick twice, nothing stuck. Reliability cases R04, R13, R14, R17.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.workers.harness import Disruption, Fleet, PrivatePostgres, assert_report, observe, until, verify
from tests.workers.journal import STEPS, TICK_WORKFLOW

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

RUNS = "slow=3,fail=1,retry=1,async=1"
LEASE_TTL = 2.0
TICKS = 5


def mid_run(fleet: Fleet, index: int) -> Callable[[], bool]:
    """True once every run worker ``index`` starts is stored (its first step began) and one of its
    slow runs is in the middle (its third step began, its last has not)."""
    pid = fleet.pid(index)
    mine = [(wf, tid) for wf, tid in fleet.expected if fleet.owner_of[tid] == index]

    def check() -> bool:
        lines = [line for line in fleet.journal() if line["pid"] == pid and line["event"] == "start"]
        begun = {(line["wf"], line["tid"]) for line in lines}
        middle = {line["tid"] for line in lines if line["step"] == "slow-3"}
        last = {line["tid"] for line in lines if line["step"] == "slow-5"}
        return set(mine) <= begun and bool(middle - last)
    return check


def unfinished(fleet: Fleet, index: int) -> set[str]:
    """The runs of worker ``index`` not finished yet, as far as the journal says."""
    finished = {line["tid"] for line in fleet.journal() if line["event"] == "finish"}
    return {tid for _, tid in fleet.expected if fleet.owner_of[tid] == index} - finished


async def start_three(make_fleet: Callable[..., Fleet], runs: str = RUNS, **options: Any) -> Fleet:
    fleet = make_fleet(lease_ttl=LEASE_TTL, tick_interval=1.0, tick_count=TICKS, **options)
    for i in range(3):
        fleet.start(i, runs)
    await fleet.wait_ready()
    fleet.go()
    return fleet


async def test_a_sigkilled_worker_s_executions_are_finished_by_the_others(make_fleet: Callable[..., Fleet]) -> None:
    """(a) SIGKILL one of three workers in the middle of its runs: the other two take every one of its
    unfinished executions over and finish them; only the steps in flight run again."""
    fleet = await start_three(make_fleet)
    await until(mid_run(fleet, 0), 30, "worker 0's runs in the middle", fleet)
    left = unfinished(fleet, 0)
    victim = fleet.pid(0)
    fleet.kill(0)
    killed_at = fleet.disruptions[-1].t0
    report, _, journal = await verify(fleet, timeout=60)
    print(report.format())
    assert_report(report, journal, fleet)
    assert left, "the kill came after worker 0 had finished everything"
    for tid in left:
        assert any(line.get("tid") == tid and line["pid"] != victim and line["t"] > killed_at
                   for line in journal if line["event"] in ("start", "finish")), (
            f"{tid} was unfinished when worker 0 was killed, yet no other worker did anything for it\n"
            + report.format(journal))
    await fleet.stop_all()


async def test_b_a_stopped_worker_past_its_lease_is_fenced_when_it_resumes(make_fleet: Callable[..., Fleet]) -> None:
    """(b) SIGSTOP a worker past its lease: the others take its executions over and finish them; on
    SIGCONT the zombie's late checkpoints are rejected (the rows do not change), it starts no further
    step of those executions, and its late results are not the ones stored."""
    fleet = await start_three(make_fleet)
    await until(mid_run(fleet, 0), 30, "worker 0's runs in the middle", fleet)
    taken = unfinished(fleet, 0)
    zombie = fleet.pid(0)
    fleet.freeze(0)
    ours = [(wf, tid) for wf, tid in fleet.expected if tid in taken]

    async def taken_over() -> dict[tuple[str, str], Any]:
        seen = await observe(fleet.url)
        rows = {(wf, tid): row for (wf, tid, _), row in seen.leases.items() if (wf, tid) in ours}
        return rows if len(rows) == len(ours) and all(r["state"] in ("done", "reverted") for r in rows.values()) \
            else {}
    deadline = time.monotonic() + 45
    while not (before := await taken_over()):
        assert time.monotonic() < deadline, f"worker 0's executions were not finished by the others while it was " \
                                            f"stopped\n{fleet.outputs(15)}"
        await asyncio.sleep(0.2)
    assert time.time() - fleet.disruptions[-1].t0 > LEASE_TTL
    fleet.thaw(0)
    resumed_at = time.time()
    # Let the zombie run its late writes (its step sleeps end at once, its checkpoints follow).
    await until(lambda: any(line["pid"] == zombie and line["t"] > resumed_at for line in fleet.journal()), 20,
                "the zombie's first journal line after SIGCONT", fleet)
    await asyncio.sleep(LEASE_TTL)
    report, seen, journal = await verify(fleet, timeout=60)
    print(report.format())
    assert_report(report, journal, fleet)
    after = {(wf, tid): row for (wf, tid, _), row in seen.leases.items() if (wf, tid) in ours}
    changed = {k: (before[k]["version"], after[k]["version"], after[k]["state"]) for k in ours
               if (before[k]["version"], before[k]["state"]) != (after[k]["version"], after[k]["state"])}
    assert not changed, f"the zombie's writes changed executions finished by others: {changed}\n" \
                        + report.format(journal)
    late_starts = [line for line in journal if line["pid"] == zombie and line["t"] > resumed_at
                   and line["event"] == "start" and line["tid"] in taken]
    assert not late_starts, f"the zombie started steps of executions taken over from it: {late_starts}"
    late_ends = [line for line in journal if line["pid"] == zombie and line["t"] > resumed_at
                 and line["event"] in ("return", "raise") and line["tid"] in taken]
    assert late_ends, "the zombie had no step in flight when it was stopped (the scenario proves nothing)"
    assert zombie in fleet.alive_pids(), f"the zombie died after SIGCONT\n{fleet.output(0)}"
    await fleet.stop_all()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_c_postgresql_restarted_mid_run(make_fleet: Callable[..., Fleet], mode: str,
                                              private_postgres: PrivatePostgres | None) -> None:
    """(c) PostgreSQL restarted (``pg_ctl stop -m fast|immediate``, down 1 s, start) while the three
    workers are in the middle of their runs: every execution still ends once, in its expected state."""
    if private_postgres is None:
        pytest.skip("needs a PostgreSQL server of its own to restart (initdb/pg_ctl)")
    fleet = await start_three(make_fleet)
    await until(mid_run(fleet, 1), 30, "worker 1's runs in the middle", fleet)
    try:
        fleet.disruptions.append(await asyncio.to_thread(private_postgres.restart, mode, 1.0))
    finally:
        await asyncio.to_thread(private_postgres.ensure_running)
    report, _, journal = await verify(fleet, timeout=90)
    print(report.format())
    assert_report(report, journal, fleet)
    await fleet.stop_all()


async def test_d_a_schedule_registered_in_three_workers_ticks_once_per_tick(make_fleet: Callable[..., Fleet]) -> None:
    """(d) The scheduled workflow is registered in all three workers: each of its ticks runs once (one
    execution per tick, its step once), and there are exactly ``number_of_executions`` ticks."""
    fleet = await start_three(make_fleet, runs="")
    report, seen, journal = await verify(fleet, timeout=60)
    print(report.format())
    assert_report(report, journal, fleet)
    ticks = sorted(e.transaction_id for e in seen.executions if e.workflow_id == TICK_WORKFLOW)
    assert len(ticks) == TICKS, ticks
    steps = [line for line in journal if line["event"] == "start" and line["wf"] == TICK_WORKFLOW]
    assert sorted(line["tid"] for line in steps) == ticks, steps
    await fleet.stop_all()


async def test_e_a_worker_stopped_while_firing_a_tick_does_not_run_it_again(make_fleet: Callable[..., Fleet]) -> None:
    """(e) A worker claims a tick of the schedule and is stopped (SIGSTOP) just before it moves the
    schedule's timer on; its claim expires and another worker fires that tick; then the first resumes.
    The tick must still have run once (R13 + R14)."""
    fleet = make_fleet(lease_ttl=LEASE_TTL, tick_interval=1.0, tick_count=4)
    fleet.start(0, "", extra=("--freeze-before-tick-move",))
    await fleet.wait_ready()
    fleet.go()
    await until(lambda: fleet.is_stopped(0), 30, "worker 0 stopping itself before moving the tick on", fleet)
    [freezing] = [line for line in fleet.journal() if line["event"] == "freezing"]
    fleet.disruptions.append(Disruption("stop", fleet.pid(0), freezing["t"], float("inf")))
    fleet.start(1, "")
    fleet.start(2, "")
    await fleet.wait_ready()
    frozen_tick = freezing["tid"]
    await until(lambda: any(line["event"] == "finish" and line["tid"] == frozen_tick for line in fleet.journal()),
                30, f"another worker running the tick {frozen_tick}", fleet)
    fleet.thaw(0)
    await asyncio.sleep(LEASE_TTL)  # what the resumed worker does with the tick it had claimed
    report, _, journal = await verify(fleet, timeout=60)
    print(report.format(journal))
    await fleet.stop_all()
    assert_report(report, journal)


async def test_f_a_worker_killed_after_moving_a_tick_on_does_not_lose_it(make_fleet: Callable[..., Fleet]) -> None:
    """(f) A worker fires a tick (its run stored, queued), moves the schedule's timer on, and is
    SIGKILLed before it drives the run. The tick must still run (once), in another worker. (Before
    ticks were stored first, such a tick was lost.)"""
    fleet = make_fleet(lease_ttl=LEASE_TTL, tick_interval=1.0, tick_count=3)
    fleet.start(0, "", extra=("--kill-after-tick-move",))
    await fleet.wait_ready()
    fleet.go()
    await until(lambda: fleet.procs[0].poll() is not None, 30, "worker 0 killing itself after the move", fleet)
    [dying] = [line for line in fleet.journal() if line["event"] == "dying"]
    fleet.disruptions.append(Disruption("kill", fleet.pid(0), dying["t"], dying["t"]))
    fleet.start(1, "")
    fleet.start(2, "")
    await fleet.wait_ready()
    report, seen, journal = await verify(fleet, timeout=60)
    print(report.format(journal))
    await fleet.stop_all()
    assert_report(report, journal)
    ticks = sorted(e.transaction_id for e in seen.executions if e.workflow_id == TICK_WORKFLOW)
    assert dying["tid"] in ticks, f"the tick {dying['tid']} fired by the killed worker never ran: ticks {ticks}"


def test_the_harness_workflows_are_not_defined_in_the_test_process() -> None:
    """The engine that reads the database here must not recover or fire the workers' executions."""
    from stepwork.engine.registry import registered_workflows

    assert not set(registered_workflows()) & {*STEPS, TICK_WORKFLOW}
