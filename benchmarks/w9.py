"""W9: the HTTP admin API's list and detail routes over 100,000 stored executions, through uvicorn.

``W9-sqlite`` and ``W9-postgres`` (``python -m benchmarks.run W9-sqlite``):

1. Populate a throwaway database (:func:`benchmarks.stored.database`): a few hundred real executions
   of four retained workflows run through a :class:`WorkflowEngine` (``done``, ``reverted``,
   ``failed``, and ``invoking``: waiting on an async step), then multiplied with bulk SQL (``INSERT …
   SELECT`` with new ids, transaction and run ids, ``created_at`` spread over 30 days, their step rows
   copied) to :data:`EXECUTIONS` execution rows; plus one 1,000-step execution, run for real. On
   PostgreSQL a ``VACUUM ANALYZE`` follows (what autovacuum does within a minute of such a load).
2. Serve the app in a child process (``python -m benchmarks.w9 serve URL PORT``): uvicorn configured
   as ``stepwork serve`` does, a static API key, the engine started by the app's lifespan.
3. Time :data:`REQUESTS` requests per shape with one keep-alive ``httpx`` client, after
   :data:`WARMUP` untimed ones: the list route (``limit=100``) plain, ``state=failed``,
   ``workflow_id=…``, ``q=`` a transaction-id fragment, ``q=`` a workflow-name fragment, the second
   page (``offset=100``), and the detail route of the 1,000-step execution.

The line: per shape ``median_ms``, ``p99_ms``, ``rows`` (returned), ``count`` and ``ok`` (every
response 200 with the rows and the count the database holds for that query, counted with SQL).
Targets (issue 9): list median ≤ 20 ms and p99 ≤ 60 ms, detail of a 1,000-step execution ≤ 30 ms.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.stored import database
from benchmarks.workloads import scaled
from stepwork import StepResponse, WorkflowResponse, create_step, create_workflow
from stepwork.engine.engine import WorkflowEngine

__all__ = ["W9_WORKLOADS"]

EXECUTIONS = int(os.environ.get("STEPWORK_W9_EXECUTIONS", "100000"))
SEEDS = 100            # real executions of each of the four workflows
LONG_STEPS = 1000
REQUESTS = 200         # timed requests per list shape (before --runs-scale)
DETAIL_REQUESTS = 50   # ... and of the detail route (a 25 MB answer: ~0.2 s each)
WARMUP = 20
KEEP_S = 90 * 86400.0  # retention: the spread-out executions must not expire while the bench runs
SPREAD_S = 30 * 86400.0
KEY = "w9-bench-static-key"
LIST_TARGETS_MS = (20.0, 60.0)  # median, p99
DETAIL_TARGET_MS = 30.0


# ----------------------------------------------------------------------------------- workflows
def _payload(tag: str) -> Any:
    def invoke(value: dict[str, Any]) -> StepResponse[dict[str, Any], str]:
        return StepResponse({**value, tag: f"{tag}-{value['n']}", "amount": value["n"] * 3}, tag)
    return invoke


def _boom(value: dict[str, Any]) -> Any:
    raise RuntimeError(f"declined {value['n']}")


def _cannot_undo(_: Any) -> None:
    raise OSError("cannot undo")


def _waits(value: dict[str, Any]) -> Any:
    return None  # an async step: it waits for set_step_success


def _retained(name: str, compose: Any) -> Any:
    return create_workflow({"name": name, "store": True, "retention_time": KEEP_S}, compose)


_reserve, _charge, _ship, _notify = (create_step(f"w9-{t}", _payload(t)) for t in ("reserve", "charge", "ship",
                                                                                    "notify"))
_hold = create_step("w9-hold", _payload("hold"), lambda _: None)
_refund = create_step("w9-refund", _boom)
_import = create_step({"name": "w9-import", "max_retries": 1}, _payload("import"), _cannot_undo)
_approve = create_step({"name": "w9-approve", "async": True}, _waits)

_boom_step = create_step("w9-validate", _boom)
orders = _retained("w9-orders", lambda i: WorkflowResponse(_notify(_ship(_charge(_reserve(i))))))
refunds = _retained("w9-refunds", lambda i: WorkflowResponse(_refund(_charge(_hold(i)))))
imports = _retained("w9-imports", lambda i: WorkflowResponse(_boom_step(_import(_reserve(i)))))
approvals = _retained("w9-approvals", lambda i: WorkflowResponse(_approve(_reserve(i))))


def _long_compose(input: Any) -> WorkflowResponse[Any]:
    v = input
    for s in _LONG:
        v = s(v)
    return WorkflowResponse(v)


def _add(value: int) -> StepResponse[int, int]:
    return StepResponse(value + 1)


_LONG = [create_step(f"w9-long-step-{i + 1}", _add) for i in range(LONG_STEPS)]
long_wf = _retained("w9-long", _long_compose)
SEED_FLOWS = ((orders, "done"), (refunds, "reverted"), (imports, "failed"), (approvals, "invoking"))


async def _seed(engine: WorkflowEngine) -> tuple[bool, str]:
    """The real executions; returns (every one ended as expected, the 1,000-step execution's id)."""
    ok = True
    for n in range(SEEDS):
        for wf, state in SEED_FLOWS:
            tx = f"{wf.compiled.name.removeprefix('w9-')[:3]}_{os.urandom(6).hex()}"
            r = await engine.run(wf, {"n": n, "customer": f"cus_{n % 37:04d}"}, transaction_id=tx,
                                 throw_on_error=False)
            ok = ok and r.transaction.state == state
    r = await engine.run(long_wf, 0, transaction_id="long_" + os.urandom(6).hex())
    ok = ok and r.result == LONG_STEPS
    [row] = await engine.list_workflow_executions({"workflow_id": "w9-long"})
    return ok, row.id


# ------------------------------------------------------------------------------ bulk multiply
_EXEC_COLUMNS = ("id, workflow_id, transaction_id, run_id, execution, context, state, retention_time, created_at, "
                 "updated_at, deleted_at, version, lease_owner, lease_expires_at, expires_at, progress, "
                 "definition_hash")
_STEP_COLUMNS = "workflow_id, transaction_id, run_id, step_index, record, output, compensate_input, compensate_output"


def multiply_statements(backend: str, copies: int, limit: int, now: float) -> list[tuple[str, tuple[Any, ...]]]:
    """SQL making ``limit`` new executions from the seeds (``copies`` of each at most), with their
    step rows: new ids, transaction and run ids, ``created_at`` spread over :data:`SPREAD_S` before
    ``now`` (``updated_at`` and ``expires_at`` moved with it)."""
    pg = backend == "postgres"
    ph = "%s" if pg else "?"

    def rnd(n: int) -> str:  # n random bytes as hex
        return f"substr(md5(random()::text || clock_timestamp()::text), 1, {2 * n})" if pg else \
            f"lower(hex(randomblob({n})))"

    def epoch(column: str) -> str:
        return f"extract(epoch from {column})" if pg else column

    def stamp(expr: str) -> str:
        return f"to_timestamp({expr})" if pg else expr
    mapping = (f"CREATE TEMP TABLE w9_map AS SELECT e.workflow_id, e.transaction_id AS seed_tx, "
               f"e.run_id AS seed_run, substr(e.transaction_id, 1, 4) || {rnd(8)} AS tx, {rnd(13)} AS run, "
               f"'wf_exec_' || upper({rnd(13)}) AS id, "
               f"{ph} - {SPREAD_S} * (row_number() OVER ()) / {ph} AS created "
               f"FROM workflow_execution e CROSS JOIN (SELECT k FROM {_numbers(backend, copies)}) n "
               f"WHERE e.workflow_id <> 'w9-long' LIMIT {ph}")
    shift = f"(m.created - {epoch('e.created_at')})"
    updated = stamp(f"{epoch('e.updated_at')} + {shift}")
    expires = stamp(f"{epoch('e.expires_at')} + {shift}")
    executions = (
        f"INSERT INTO workflow_execution ({_EXEC_COLUMNS}) SELECT m.id, e.workflow_id, m.tx, m.run, e.execution, "
        f"e.context, e.state, e.retention_time, {stamp('m.created')}, {updated}, NULL, e.version, e.lease_owner, "
        f"e.lease_expires_at, CASE WHEN e.expires_at IS NULL THEN NULL ELSE {expires} END, e.progress, "
        "e.definition_hash FROM w9_map m JOIN workflow_execution e ON e.workflow_id = m.workflow_id "
        "AND e.transaction_id = m.seed_tx AND e.run_id = m.seed_run")
    steps = (f"INSERT INTO workflow_execution_step ({_STEP_COLUMNS}) SELECT m.workflow_id, m.tx, m.run, "
             "s.step_index, s.record, s.output, s.compensate_input, s.compensate_output FROM w9_map m "
             "JOIN workflow_execution_step s ON s.workflow_id = m.workflow_id AND s.transaction_id = m.seed_tx "
             "AND s.run_id = m.seed_run")
    return [(mapping, (now, limit, limit)), (executions, ()), (steps, ()), ("DROP TABLE w9_map", ())]


def _numbers(backend: str, copies: int) -> str:
    if backend == "postgres":
        return f"generate_series(1, {copies}) AS g(k)"
    return f"(WITH RECURSIVE c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < {copies}) SELECT k FROM c)"


# ------------------------------------------------------------------------------------ populate
def _sql_connect(backend: str, url: str) -> Any:
    if backend == "postgres":
        import psycopg

        return psycopg.connect(url, autocommit=True)
    return sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)


async def populate(backend: str, url: str) -> dict[str, Any]:
    """Real seed executions, then the bulk copies; returns the facts the timing checks against."""
    t0 = time.perf_counter()
    async with WorkflowEngine(url) as engine:
        seeded_ok, long_id = await _seed(engine)
    seed_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    conn = _sql_connect(backend, url)
    try:
        seeds = conn.execute("SELECT count(*) FROM workflow_execution WHERE workflow_id <> 'w9-long'").fetchone()[0]
        want = EXECUTIONS - seeds - 1
        copies = -(-want // seeds)
        if backend == "sqlite":
            conn.execute("BEGIN IMMEDIATE")
        for statement, params in multiply_statements(backend, copies, want, time.time()):
            conn.execute(statement, params)
        if backend == "sqlite":
            conn.execute("COMMIT")
        else:
            conn.execute("VACUUM ANALYZE")
        bulk_s = time.perf_counter() - t1
        epoch = "extract(epoch from created_at)" if backend == "postgres" else "created_at"
        rows = conn.execute(f"SELECT id, workflow_id, transaction_id, state, run_id, {epoch} "
                            "FROM workflow_execution WHERE deleted_at IS NULL").fetchall()
        step_rows = conn.execute("SELECT count(*) FROM workflow_execution_step").fetchone()[0]
    finally:
        conn.close()
    return {"long_id": long_id, "rows": rows, "seeded_ok": seeded_ok, "seed_s": seed_s, "bulk_s": bulk_s,
            "step_rows": step_rows}


def expected(rows: list[tuple[Any, ...]], q: str | None = None, **equal: str) -> list[str]:
    """The ids a filtered list returns, in the route's default order (created_at, run_id), computed here."""
    fields = {"workflow_id": 1, "transaction_id": 2, "state": 3, "run_id": 4}
    needle = (q or "").lower()
    hits = [r for r in rows if all(r[fields[k]] == v for k, v in equal.items())
            and (q is None or any(needle in str(r[i]).lower() for i in (1, 2, 3, 4)))]
    hits.sort(key=lambda r: (float(r[5]), r[4]))
    return [r[0] for r in hits]


# -------------------------------------------------------------------------------------- serving
def serve(url: str, port: int) -> None:
    """The child process: the app on uvicorn as ``stepwork serve`` configures it, a static key."""
    import logging

    import uvicorn

    from stepwork.http.app import create_app
    from stepwork.http.keys import ApiKeys

    logging.basicConfig(level=logging.WARNING)
    app = create_app(WorkflowEngine(url), keys=ApiKeys(url), static_keys=[KEY], manage_engine=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", server_header=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(url: str) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.w9", "serve", url, str(port)],
                            stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the W9 server did not start")
        time.sleep(0.1)


def _time_shape(client: Any, path: str, params: dict[str, Any], n: int, warm: int,
                check: Any) -> dict[str, Any]:
    for _ in range(warm):
        client.get(path, params=params)
    times: list[float] = []
    ok = True
    body: dict[str, Any] = {}
    size = wire = 0
    error = ""
    for _ in range(n):
        t0 = time.perf_counter()
        response = client.get(path, params=params)
        times.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200 and ok:
            ok, error = False, f"{response.status_code} {response.text[:200]}"
        size, wire = len(response.content), response.num_bytes_downloaded
    if ok:
        body = response.json()
        ok = bool(check(body))
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    out = {"median_ms": round(statistics.median(times), 2), "p99_ms": round(p99, 2), "total_ms": round(sum(times), 1),
           "min_ms": round(times[0], 2), "requests": n, "response_bytes": size,
           "wire_bytes": wire, "ok": ok,
           **({"error": error} if error else {})}
    if "workflow_executions" in body:
        out |= {"rows": len(body["workflow_executions"]), "count": body["count"]}
    return out


def _list_check(ids: list[str], offset: int = 0) -> Any:
    def check(body: dict[str, Any]) -> bool:
        got = [r["id"] for r in body["workflow_executions"]]
        return bool(body["count"] == len(ids) and got == ids[offset:offset + 100])
    return check


_LIST = "/admin/workflows-executions"


def measure(base: str, facts: dict[str, Any], n: int, warm: int, n_detail: int) -> dict[str, dict[str, Any]]:
    import httpx

    # The 1,000-step record's definition nests 1,000 levels (Medusa's shape): Python's json.loads needs
    # a higher recursion limit to read it back (JavaScript's JSON.parse does not).
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    rows = facts["rows"]
    rare = next(r[2] for r in rows if r[2].count("_") == 1 and len(r[2]) > 12)[4:10]
    shapes: dict[str, tuple[str, dict[str, Any], Any]] = {
        "list": (_LIST, {"limit": 100}, _list_check(expected(rows))),
        "state_failed": (_LIST, {"limit": 100, "state": "failed"}, _list_check(expected(rows, state="failed"))),
        "workflow_id": (_LIST, {"limit": 100, "workflow_id": "w9-orders"},
                        _list_check(expected(rows, workflow_id="w9-orders"))),
        "q_transaction": (_LIST, {"limit": 100, "q": rare}, _list_check(expected(rows, q=rare))),
        "q_workflow": (_LIST, {"limit": 100, "q": "refund"}, _list_check(expected(rows, q="refund"))),
        "second_page": (_LIST, {"limit": 100, "offset": 100}, _list_check(expected(rows), 100)),
        "detail_1000_steps": (f"{_LIST}/{facts['long_id']}", {}, lambda b: len(
            b["workflow_execution"]["execution"]["steps"]) > LONG_STEPS),
    }
    out: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=base, timeout=60,
                      headers={"Authorization": f"Bearer {KEY}"}) as client:
        for name, (path, params, check) in shapes.items():
            count = n_detail if name.startswith("detail") else n
            out[name] = {**_time_shape(client, path, params, count, min(warm, count), check),
                         **({"q": params["q"]} if "q" in params else {})}
    return out


async def _w9(backend: str, scale: float) -> dict[str, Any]:
    n, warm, n_detail = scaled(REQUESTS, scale), scaled(WARMUP, scale), scaled(DETAIL_REQUESTS, scale)
    async with database(backend) as (url, db_facts):
        facts = await populate(backend, url)
        proc, base = _start_server(url)
        try:
            shapes = await asyncio.to_thread(measure, base, facts, n, warm, n_detail)
        finally:
            proc.terminate()
            proc.wait(30)
    lists = {k: v for k, v in shapes.items() if not k.startswith("detail")}
    detail = shapes["detail_1000_steps"]
    met_list = all(v["median_ms"] <= LIST_TARGETS_MS[0] and v["p99_ms"] <= LIST_TARGETS_MS[1] for v in lists.values())
    total_s = sum(v["total_ms"] for v in shapes.values()) / 1000
    return {"workload": "W9", "name": "http-list", "mode": f"durable-{backend}",
            "runs": sum(v["requests"] for v in shapes.values()),
            "steps_per_run": 1, "concurrency": 1, "total_s": total_s,
            "ok": facts["seeded_ok"] and all(v["ok"] for v in shapes.values()),
            "executions": len(facts["rows"]), "step_rows": facts["step_rows"],
            "seed_s": round(facts["seed_s"], 2), "bulk_s": round(facts["bulk_s"], 2), "shapes": shapes,
            "targets": {"list_median_ms": LIST_TARGETS_MS[0], "list_p99_ms": LIST_TARGETS_MS[1],
                        "detail_median_ms": DETAIL_TARGET_MS},
            "list_targets_met": met_list, "detail_target_met": detail["median_ms"] <= DETAIL_TARGET_MS,
            **db_facts, "retained": True, "retention_time_s": KEEP_S,
            "note": f"{n} timed requests per list shape ({n_detail} of the detail route) after {warm} warm-up "
                    "ones, one keep-alive httpx client, "
                    "uvicorn in a child process; total_s is the time of all timed requests"}


async def w9_sqlite(scale: float) -> dict[str, Any]:
    return await _w9("sqlite", scale)


async def w9_postgres(scale: float) -> dict[str, Any]:
    return await _w9("postgres", scale)


W9_WORKLOADS = {"W9-sqlite": w9_sqlite, "W9-postgres": w9_postgres}
if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    serve(sys.argv[2], int(sys.argv[3]))
