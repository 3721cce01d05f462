"""The stored (durable) workloads: W1 and W2 on SQLite and on PostgreSQL, W6 on both, W7 on SQLite.

Each coroutine takes the ``--runs-scale`` factor and returns the fields of one JSON line (``mode``
``durable-sqlite`` or ``durable-postgres``), like the in-memory ones of :mod:`benchmarks.workloads`.

- ``W1``/``W2`` stored: the workflows of the in-memory W1 and W2 (the same step objects and
  composers), created again with ``{"store": True}`` and no ``retention_time``, so every run is
  checkpointed at every step and its rows are deleted when it finishes. Fewer runs than in memory
  (500 on SQLite, 200 on PostgreSQL). The in-memory W1/W2 runs first in the same process (its usual
  warm-up and run counts, same steps per run), so the line carries ``memory_us_per_step`` and
  ``us_per_step_above_memory``.
- ``W6``: a 1,000-step linear stored workflow against a 10-step one: µs per step of each and their
  ratio (checkpoint cost must not grow with the number of steps). ``W6`` on a SQLite file,
  ``W6-postgres`` on PostgreSQL.
- ``-retained`` variants of all of the above (``W1-sqlite-retained`` … ``W6-postgres-retained``):
  the same workflows with ``retention_time`` (:data:`RETENTION_S`), so finished executions stay in
  the database, as they do for users who store executions; the line says ``"retained": true`` and
  ``rows_left`` is the number of executions kept (every run's, warm-up and counting pass included).
- ``W7``: 10,000 executions of a workflow whose first step is async (it waits), started one after
  another with distinct transaction ids, then all completed with ``set_step_success``: starts and
  completions per second, and the process's peak RSS.

After the timed runs, every workload makes an untimed counting pass of the same runs (fewer of them,
:data:`COUNT_RUNS`) with the store's connection instrumented (:mod:`benchmarks.counting`), and its
line carries ``statements_per_step``, ``commits_per_step`` (and on PostgreSQL
``round_trips_per_step``), the same per run, and ``statements_by_kind_per_run``.

Databases: SQLite in a file of a temporary directory (the store puts it in WAL mode,
``synchronous=NORMAL``); PostgreSQL in a throwaway database ``stepwork_bench_<pid>_<hex>`` created on
the server of ``STEPWORK_BENCH_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``,
the server ``make test`` starts) and dropped at the end. If that server cannot be reached the
workload raises :class:`Unavailable` (the runner prints the reason and skips it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import benchmarks.workloads as _workloads
from benchmarks.counting import count_store
from benchmarks.databases import PG_ADMIN_URL, pg_problem
from benchmarks.floors import measure_floors
from benchmarks.workloads import (
    STEPS,
    StepTenFailed,
    _adder,
    _compensating,
    _Counts,
    _linear,
    rss_mb,
    scaled,
    settle,
    w1,
    w2,
)
from stepwork import StepResponse, WorkflowResponse, create_step, create_workflow
from stepwork.engine.engine import WorkflowEngine
from stepwork.sdk.workflows import Workflow

__all__ = ["STORED_WORKLOADS", "Unavailable"]


# (warm-up, timed runs) of the stored W1/W2, before --runs-scale: fewer than in memory (1,000/2,000
# and 300/1,000), since a stored step costs tens (SQLite) to hundreds (PostgreSQL) of microseconds.
STORED_RUNS = {"sqlite": (50, 500), "postgres": (20, 200)}
W6_LONG = 1000          # steps of W6's long workflow
W6_SHORT = 10           # steps of the one it is compared with
W6_LONG_RUNS = 3        # timed runs (3,000 steps), after one warm-up run
W6_SLOW_S = 10.0        # ... but only 1 if the warm-up run took longer than this
W6_FALLBACK = 250       # steps measured instead if the engine cannot run the 1,000-step workflow
W6_SHORT_RUNS = (50, 300)  # warm-up, timed (3,000 steps)
W7_RUNS = (100, 10_000)    # warm-up (started and completed), timed
RETENTION_S = 3600.0       # retention_time of the -retained variants: finished executions stay an hour
# Runs of the untimed counting pass after the timed runs (before --runs-scale): W1/W2 and W6's
# 10-step workflow; W6's long workflow; W7's starts and completions.
COUNT_RUNS = 50
COUNT_W6_LONG_RUNS = 1
COUNT_W7 = 50


class Unavailable(Exception):
    """A database the workload needs cannot be reached; the workload is skipped."""


# ------------------------------------------------------------------------------------ databases
@contextlib.asynccontextmanager
async def database(backend: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A fresh, empty database for one workload: ``(database_url, facts for the JSON line)``."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="stepwork-bench-") as tmp:
            yield f"sqlite:///{tmp}/bench.db", {"database": "sqlite file in a temporary directory"}
        return
    import psycopg

    problem = pg_problem()
    if problem:
        raise Unavailable(problem)
    name = f"stepwork_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await psycopg.AsyncConnection.connect(PG_ADMIN_URL, autocommit=True)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        async with admin.cursor() as cur:
            await cur.execute("SHOW server_version")
            version = (await cur.fetchone() or ("?",))[0]
            await cur.execute("SHOW synchronous_commit")
            sync = (await cur.fetchone() or ("?",))[0]
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        try:
            yield f"{base}/{name}", {"database": f"PostgreSQL {version} (throwaway database)",
                                     "pg_synchronous_commit": sync}
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def journal_mode(database_url: str) -> str:
    """The journal mode of a SQLite file (read from a second connection: WAL is recorded in the file)."""
    conn = sqlite3.connect(database_url[len("sqlite:///"):])
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


async def rows_left(engine: WorkflowEngine, workflow_id: str) -> int:
    """How many executions of ``workflow_id`` the store still holds."""
    _, count = await engine.list_and_count_workflow_executions({"workflow_id": workflow_id}, take=0)
    return count


def _us(total_s: float, runs: int, steps: float) -> float:
    return total_s * 1e6 / (runs * steps)


# --------------------------------------------------------------------------- W1 / W2, stored
# The in-memory workflows' steps and composers, created again as stored workflows: without
# retention (a finished run's rows are deleted) and with it (they are kept).
stored_linear_wf = create_workflow({"name": "w1-linear-stored", "store": True}, _linear)
stored_comp_wf = create_workflow({"name": "w2-compensate-stored", "store": True}, _compensating)
retained_linear_wf = create_workflow({"name": "w1-linear-retained", "store": True, "retention_time": RETENTION_S},
                                     _linear)
retained_comp_wf = create_workflow({"name": "w2-compensate-retained", "store": True,
                                    "retention_time": RETENTION_S}, _compensating)


async def _w1_stored_runs(engine: WorkflowEngine, wf: Workflow[Any, Any], start: int, runs: int) -> bool:
    ok = True
    for i in range(start, start + runs):
        r = await engine.run(wf, i)
        if r.result != i + STEPS:
            ok = False
    return ok


async def _w2_stored_runs(engine: WorkflowEngine, wf: Workflow[Any, Any], start: int, runs: int) -> bool:
    ok = True
    for i in range(start, start + runs):
        done_before = _Counts.compensations_of_done
        r = await engine.run(wf, i, throw_on_error=False)
        errors = r.errors
        if not (len(errors) == 1 and isinstance(errors[0].exception, StepTenFailed)
                and r.transaction.state == "reverted"
                and _Counts.compensations_of_done - done_before == STEPS - 1):
            ok = False
    return ok


def _retention_note(retained: bool) -> str:
    if retained:
        return f"store=True, retention_time={RETENTION_S:g} s (finished executions stay in the database)"
    return "store=True, no retention (rows deleted at the end)"


async def _stored(workload: str, backend: str, scale: float, retained: bool = False) -> dict[str, Any]:
    # 1. the in-memory path, in this process, right before (same workflow shape and steps per run)
    memory = await (w1 if workload == "W1" else w2)(scale)
    memory_us = _us(memory["total_s"], memory["runs"], memory["steps_per_run"])
    if workload == "W1":
        wf, batch = (retained_linear_wf if retained else stored_linear_wf), _w1_stored_runs
    else:
        wf, batch = (retained_comp_wf if retained else stored_comp_wf), _w2_stored_runs
    warm, timed = (scaled(n, scale) for n in STORED_RUNS[backend])
    n_count = scaled(COUNT_RUNS, scale)
    async with database(backend) as (url, facts):
        async with WorkflowEngine(url) as engine:
            ok = await batch(engine, wf, 0, warm)
            settle()
            _Counts.compensations = _Counts.compensations_of_done = 0
            with profiled():
                t0 = time.perf_counter()
                ok = await batch(engine, wf, warm, timed) and ok
                total_s = time.perf_counter() - t0
            compensations, compensations_of_done = _Counts.compensations, _Counts.compensations_of_done
            # W2 counts its compensations as steps (as Medusa's bench does)
            steps_per_run = STEPS + (compensations / timed if workload == "W2" else 0)
            # 2. the untimed counting pass: the same runs again, the store's connection instrumented
            async with count_store(engine) as counted:
                count_ok = await batch(engine, wf, warm + timed, n_count)
            counts = counted.fields(n_count, steps_per_run)
            left = await rows_left(engine, wf.compiled.name)
            # 3. the floors: the store's statements of one more run replayed alone, one commit
            recorded: list[bool] = []

            async def one_run() -> None:
                recorded.append(await batch(engine, wf, warm + timed + n_count, 1))

            floors = await measure_floors(engine, one_run, timed, steps_per_run, counts.get("commits_per_step"))
            count_ok = count_ok and all(recorded)
        if backend == "sqlite":
            facts["sqlite_journal_mode"] = journal_mode(url)
    fields: dict[str, Any] = {"workload": workload, "name": memory["name"], "mode": f"durable-{backend}",
                              "runs": timed, "steps_per_run": steps_per_run, "concurrency": 1, "total_s": total_s}
    if workload == "W2":
        ok = ok and compensations_of_done == timed * (STEPS - 1)
        fields["compensations_per_run"] = compensations / timed
    for k in ("steps_per_run", "compensations_per_run"):
        if k in fields and float(fields[k]).is_integer():
            fields[k] = int(fields[k])
    stored_us = _us(total_s, timed, fields["steps_per_run"])
    expected_left = warm + timed + n_count if retained else 0
    return {**fields, "ok": ok and count_ok and left == expected_left, "retained": retained,
            "memory_runs": memory["runs"], "memory_us_per_step": round(memory_us, 2),
            "us_per_step_above_memory": round(stored_us - memory_us, 2),
            "warmup_runs": warm, "rows_left": left, **({"retention_time_s": RETENTION_S} if retained else {}),
            **counts, **floors,
            "engine_us_per_step": round(stored_us - floors["sql_replay_us_per_step"], 2), **facts,
            "counting": counted.method,
            "note": f"{_retention_note(retained)}; {timed} runs (in memory: {memory['runs']}); the in-memory "
                    f"figure is measured in this process right before; statements and commits counted in "
                    f"{n_count} more runs after the timed ones (untimed)"}


async def w1_sqlite(scale: float) -> dict[str, Any]:
    return await _stored("W1", "sqlite", scale)


async def w2_sqlite(scale: float) -> dict[str, Any]:
    return await _stored("W2", "sqlite", scale)


async def w1_postgres(scale: float) -> dict[str, Any]:
    return await _stored("W1", "postgres", scale)


async def w2_postgres(scale: float) -> dict[str, Any]:
    return await _stored("W2", "postgres", scale)


async def w1_sqlite_retained(scale: float) -> dict[str, Any]:
    return await _stored("W1", "sqlite", scale, retained=True)


async def w2_sqlite_retained(scale: float) -> dict[str, Any]:
    return await _stored("W2", "sqlite", scale, retained=True)


async def w1_postgres_retained(scale: float) -> dict[str, Any]:
    return await _stored("W1", "postgres", scale, retained=True)


async def w2_postgres_retained(scale: float) -> dict[str, Any]:
    return await _stored("W2", "postgres", scale, retained=True)


# ------------------------------------------------------------------------ W6 long workflows
def linear_stored(n: int, retained: bool = False) -> Workflow[Any, Any]:
    """An ``n``-step linear stored workflow of W1's trivial steps (defined when W6 runs)."""
    tag = "-retained" if retained else ""
    steps = [create_step(f"w6-{n}{tag}-step-{i + 1}", _adder) for i in range(n)]

    def compose(input: Any) -> WorkflowResponse[Any]:
        v = input
        for s in steps:
            v = s(v)
        return WorkflowResponse(v)

    options: dict[str, Any] = {"name": f"w6-linear-{n}{tag}", "store": True}
    if retained:
        options["retention_time"] = RETENTION_S
    return create_workflow(options, compose)


async def _time_linear(engine: WorkflowEngine, wf: Workflow[Any, Any], n: int, warm: int,
                       timed: int) -> tuple[float, bool]:
    ok = True
    for i in range(warm):
        ok = (await engine.run(wf, i)).result == i + n and ok
    settle()
    t0 = time.perf_counter()
    for i in range(timed):
        ok = (await engine.run(wf, i)).result == i + n and ok
    return time.perf_counter() - t0, ok


class _Warnings(logging.Handler):
    """The warnings stepwork logs while a W6 run is tried (they carry the cause of an engine failure)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def _try(engine: WorkflowEngine, wf: Workflow[Any, Any], n: int) -> tuple[bool, str | None]:
    """Run ``wf`` once: ``(result right, None)``, or ``(False, why it failed)``."""
    handler = _Warnings()
    logger = logging.getLogger("stepwork")
    logger.addHandler(handler)
    try:
        return (await engine.run(wf, -1)).result == n - 1, None
    except Exception as exc:
        logged = f" (logged before: {handler.messages[-1]!r})" if handler.messages else ""
        return False, f"{type(exc).__name__}: {exc}{logged}"
    finally:
        logger.removeHandler(handler)


async def _w6_warm(engine: WorkflowEngine, extra: dict[str, Any],
                   retained: bool = False) -> tuple[Workflow[Any, Any], int, bool]:
    """W6's warm-up run of the long workflow: ``(workflow, steps, ok)``.

    If the engine cannot run the 1,000-step workflow at the interpreter's default recursion limit,
    the line says so (``engine_error``) and it is tried again with a higher limit; if that fails too
    (``engine_error_at_raised_limit``), W6 measures a 250-step workflow instead (``fallback_steps``),
    so the line still shows how the per-step cost grows, and reports ``ok: false``."""
    long_wf = linear_stored(W6_LONG, retained)
    ok, error = await _try(engine, long_wf, W6_LONG)
    if error is None:
        return long_wf, W6_LONG, ok
    limit = sys.getrecursionlimit()
    extra["engine_error"] = f"a {W6_LONG}-step stored run fails at the default recursion limit ({limit}): {error}"
    sys.setrecursionlimit(max(limit, 20 * W6_LONG))
    extra["recursion_limit"] = sys.getrecursionlimit()
    ok, error = await _try(engine, long_wf, W6_LONG)
    if error is None:
        return long_wf, W6_LONG, ok
    extra["engine_error_at_raised_limit"] = f"it fails at recursion limit {sys.getrecursionlimit()} too: {error}"
    extra["fallback_steps"] = W6_FALLBACK
    fallback = linear_stored(W6_FALLBACK, retained)
    await engine.run(fallback, -1)  # the warm-up run (if this raises too, the workload fails)
    return fallback, W6_FALLBACK, False


async def _w6(backend: str, scale: float, retained: bool = False) -> dict[str, Any]:
    short_wf = linear_stored(W6_SHORT, retained)
    s_warm, s_runs = (scaled(n, scale) for n in W6_SHORT_RUNS)
    l_runs = scaled(W6_LONG_RUNS, scale)
    c_short, c_long = scaled(COUNT_RUNS, scale), COUNT_W6_LONG_RUNS
    extra: dict[str, Any] = {}
    async with database(backend) as (url, facts):
        async with WorkflowEngine(url) as engine:
            short_s, ok = await _time_linear(engine, short_wf, W6_SHORT, s_warm, s_runs)
            w0 = time.perf_counter()
            long_wf, n, warm_ok = await _w6_warm(engine, extra, retained)
            warm_s = time.perf_counter() - w0
            if warm_s > W6_SLOW_S and l_runs > 1:  # keep `make bench` bearable while a long run is this slow
                extra["runs_cut"] = f"warm-up run took {warm_s:.1f} s > {W6_SLOW_S:.0f} s: 1 timed run, not {l_runs}"
                l_runs = 1
            with profiled():
                long_s, long_ok = await _time_linear(engine, long_wf, n, 0, l_runs)
            # the untimed counting pass: some runs of each workflow, the store's connection instrumented
            async with count_store(engine) as counted_long:
                _, count_ok = await _time_linear(engine, long_wf, n, 0, c_long)
            async with count_store(engine) as counted_short:
                _, short_count_ok = await _time_linear(engine, short_wf, W6_SHORT, 0, c_short)
            left_long = await rows_left(engine, long_wf.compiled.name)
            left_short = await rows_left(engine, short_wf.compiled.name)
        if backend == "sqlite":
            facts["sqlite_journal_mode"] = journal_mode(url)
    # every run of either workflow is kept with retention (W6's warm-up of the long one is one run)
    expected_long, expected_short = (1 + l_runs + c_long, s_warm + s_runs + c_short) if retained else (0, 0)
    ok = (ok and warm_ok and long_ok and count_ok and short_count_ok
          and left_long == expected_long and left_short == expected_short)
    us_short = _us(short_s, s_runs, W6_SHORT)
    us_long = _us(long_s, l_runs, n)
    workload = "W6" + ("-postgres" if backend == "postgres" else "") + ("-retained" if retained else "")
    return {"workload": "W6", "name": "long-linear", "mode": f"durable-{backend}", "runs": l_runs,
            "steps_per_run": n, "concurrency": 1, "total_s": long_s, "ok": ok, "retained": retained,
            f"us_per_step_at_{n}": round(us_long, 2), "us_per_step_at_10": round(us_short, 2),
            f"ratio_{n}_to_10": round(us_long / us_short, 2), "runs_at_10": s_runs,
            "total_s_at_10": round(short_s, 4), f"warmup_s_at_{n}": round(warm_s, 3),
            "rows_left": left_long + left_short, **({"retention_time_s": RETENTION_S} if retained else {}),
            **counted_long.fields(c_long, n), **counted_short.fields(c_short, W6_SHORT, "_at_10"),
            **extra, **facts, "counting": counted_long.method,
            "note": f"{workload}: {l_runs} run(s) of a {n}-step stored workflow (after 1 warm-up run) vs {s_runs} "
                    f"runs of a {W6_SHORT}-step one, same trivial steps, same engine and database; "
                    f"{_retention_note(retained)}; statements and commits counted in {c_long} more run(s) of "
                    f"the long one and {c_short} of the short one (untimed)"}


async def w6(scale: float) -> dict[str, Any]:
    return await _w6("sqlite", scale)


async def w6_retained(scale: float) -> dict[str, Any]:
    return await _w6("sqlite", scale, retained=True)


async def w6_postgres(scale: float) -> dict[str, Any]:
    return await _w6("postgres", scale)


async def w6_postgres_retained(scale: float) -> dict[str, Any]:
    return await _w6("postgres", scale, retained=True)


# ------------------------------------------------------------------- W7 waiting executions
def _wait_invoke(value: int) -> Any:
    """An async step's invoke: returning (not a StepResponse) leaves the step waiting for its response,
    which ``set_step_success`` gives (an int here)."""
    return None


def _after(value: int) -> StepResponse[int, int]:
    return StepResponse(value + 1)


w7_wait = create_step({"name": "w7-wait", "async": True}, _wait_invoke)
w7_after = create_step("w7-after", _after)


def _w7_compose(input: Any) -> WorkflowResponse[Any]:
    return WorkflowResponse(w7_after(w7_wait(input)))


w7_wf = create_workflow({"name": "w7-async", "store": True}, _w7_compose)
W7_KEY = "w7-async:{}:w7-wait:invoke"


async def _w7_start(engine: WorkflowEngine, first: int, n: int, prefix: str) -> bool:
    ok = True
    for i in range(first, first + n):
        r = await engine.run(w7_wf, i, transaction_id=f"{prefix}{i}")
        if r.transaction.state != "invoking":
            ok = False
    return ok


async def _w7_complete(engine: WorkflowEngine, first: int, n: int, prefix: str) -> bool:
    ok = True
    for i in range(first, first + n):
        r = await engine.set_step_success(W7_KEY.format(f"{prefix}{i}"), i * 2)
        if r.transaction.state != "done" or r.result != i * 2 + 1:
            ok = False
    return ok


async def w7(scale: float) -> dict[str, Any]:
    warm, n = (scaled(k, scale) for k in W7_RUNS)
    async with database("sqlite") as (url, facts):
        async with WorkflowEngine(url) as engine:
            ok = await _w7_start(engine, 0, warm, "warm-")
            ok = await _w7_complete(engine, 0, warm, "warm-") and ok
            settle()
            rss_before = rss_mb()
            with profiled():
                t0 = time.perf_counter()
                ok = await _w7_start(engine, 0, n, "tx-") and ok
                start_s = time.perf_counter() - t0
            rss_started = rss_mb()
            waiting = await rows_left(engine, w7_wf.compiled.name)
            with profiled():
                t1 = time.perf_counter()
                ok = await _w7_complete(engine, 0, n, "tx-") and ok
                complete_s = time.perf_counter() - t1
            left = await rows_left(engine, w7_wf.compiled.name)
            # the untimed counting pass: more starts, then their completions, the connection instrumented
            c = scaled(COUNT_W7, scale)
            async with count_store(engine) as counted_starts:
                count_ok = await _w7_start(engine, 0, c, "count-")
            async with count_store(engine) as counted_completions:
                count_ok = await _w7_complete(engine, 0, c, "count-") and count_ok
            left = max(left, await rows_left(engine, w7_wf.compiled.name))
        facts["sqlite_journal_mode"] = journal_mode(url)
    counted = {**counted_starts.per(c, "start", kinds=True), **counted_completions.per(c, "completion", kinds=True),
               "counted_runs": c}
    total_statements = counted_starts.statements + counted_completions.statements
    total_commits = counted_starts.commits + counted_completions.commits
    return {"workload": "W7", "name": "async-waiting", "mode": "durable-sqlite", "runs": n, "steps_per_run": 2,
            "concurrency": 1, "total_s": start_s + complete_s,
            "ok": ok and count_ok and waiting == n and left == 0, "retained": False,
            "starts_per_s": round(n / start_s, 1), "completions_per_s": round(n / complete_s, 1),
            "us_per_start": round(start_s * 1e6 / n, 2), "us_per_completion": round(complete_s * 1e6 / n, 2),
            "start_s": round(start_s, 4), "complete_s": round(complete_s, 4),
            "waiting_after_starts": waiting, "rows_left": left,
            "rss_before_starts_mb": round(rss_before, 1), "rss_after_starts_mb": round(rss_started, 1),
            "statements_per_step": round(total_statements / (2 * c), 3),
            "commits_per_step": round(total_commits / (2 * c), 3),
            "statements_per_run": round(total_statements / c, 2), "commits_per_run": round(total_commits / c, 2),
            **counted, **facts,
            "counting": counted_starts.method,
            "note": f"{n} executions started one after another (distinct transaction ids, the async first step "
                    "waits), then each completed with set_step_success (the second step runs in that call); "
                    f"runs_per_s counts a start plus a completion; statements and commits counted in {c} more "
                    "starts and their completions (untimed; per step: a start and a completion are a step each)"}


# ------------------------------------------------------------------------------- profiling
PROFILER: Any = None  # a cProfile.Profile set by ``run.py --profile``: enabled around the timed runs


@contextlib.contextmanager
def profiled() -> Iterator[None]:
    """Enable :data:`PROFILER` (if set) for the block."""
    if PROFILER is None:
        yield
        return
    PROFILER.enable()
    try:
        yield
    finally:
        PROFILER.disable()


STORED_WORKLOADS: dict[str, Callable[[float], Coroutine[Any, Any, dict[str, Any]]]] = {
    "W1-sqlite": w1_sqlite, "W2-sqlite": w2_sqlite, "W1-postgres": w1_postgres, "W2-postgres": w2_postgres,
    "W6": w6, "W6-postgres": w6_postgres, "W7": w7,
    "W1-sqlite-retained": w1_sqlite_retained, "W2-sqlite-retained": w2_sqlite_retained,
    "W1-postgres-retained": w1_postgres_retained, "W2-postgres-retained": w2_postgres_retained,
    "W6-retained": w6_retained, "W6-postgres-retained": w6_postgres_retained,
}

_workloads.RSS_BASE_MB = rss_mb()  # rss_base_mb: after loading the engine and defining these workflows too
