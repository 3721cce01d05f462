"""The brand example on the durable engine: stored executions, a step completed from outside, a crash.

The demo (:func:`show_durable_engine`, called at the end of ``examples.brand.demo``) runs a
:class:`~stepwork.WorkflowEngine` on a SQLite file in a temporary directory and shows:

- ``register-brand`` (``store=True``): a stored execution, listed back from the engine;
- ``launch-brand``: a long-running step, ``wait-for-legal-approval``, that waits until someone outside
  the workflow calls ``engine.set_step_success`` (here: the demo, playing the legal team);
- ``import-brand-catalog``: a worker process runs it on the same database and is killed with SIGKILL in
  the middle of a step; once the worker's lease runs out, the demo's engine takes the execution over
  and finishes it. Completed steps are not run again; the interrupted one is, with the same
  idempotency key.

The worker is this module: ``python -m examples.brand.durable worker DATABASE_URL WORKDIR``. The
catalog steps append one line per invocation to ``WORKDIR/invocations.log`` (step, process id,
attempt, idempotency key), which is how the demo tells what ran where.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypedDict

from examples.brand.steps import CreateBrandInput, create_brand_step, publish_brands_step
from examples.brand.store import Brand, Mailer, make_container
from stepwork import (
    Ref,
    StepContext,
    StepworkError,
    WorkflowEngine,
    WorkflowExecution,
    WorkflowResponse,
    create_step,
    transform,
    workflow,
)

__all__ = [
    "CatalogInput",
    "LaunchBrandInput",
    "import_brand_catalog_workflow",
    "launch_brand_workflow",
    "register_brand_workflow",
    "show_durable_engine",
]

ROOT = Path(__file__).resolve().parents[2]  # where `python -m examples.brand.durable` runs from
CATALOG_TRANSACTION = "catalog-import-1"
WORKER_LEASE_TTL = 0.5  # seconds: how long the worker's executions stay claimed after it stops renewing


# -- register-brand: a stored execution -----------------------------------------------------------


@workflow({"name": "register-brand", "store": True, "retention_time": 3600})
def register_brand_workflow(input: Ref[CreateBrandInput]) -> WorkflowResponse[Brand]:
    """``create-brand``, with the execution stored (and kept an hour after it finishes)."""
    return WorkflowResponse(create_brand_step(input))


# -- launch-brand: a long-running step, completed from outside ------------------------------------


class LaunchBrandInput(TypedDict):
    """Input of ``launch-brand``."""

    name: str
    legal_contact: str


class Approval(TypedDict):
    """What the legal team answers (the output of ``wait-for-legal-approval``)."""

    approved_by: str
    reference: str


def ask_legal_for_approval(input: dict[str, Any], ctx: StepContext) -> None:
    """Send the request; the step then waits (``async``) until the answer is given to the engine
    with ``set_step_success`` / ``set_step_failure`` under this step's idempotency key."""
    mailer: Mailer = ctx.container.resolve("mailer")
    mailer.send(input["to"], f"Please approve brand {input['brand']['name']!r} (answer to {ctx.idempotency_key})")


wait_for_legal_approval_step = create_step({"name": "wait-for-legal-approval", "async": True},
                                           ask_legal_for_approval)


@workflow({"name": "launch-brand", "retention_time": 3600})
def launch_brand_workflow(input: Ref[LaunchBrandInput]) -> WorkflowResponse[dict[str, Any]]:
    """Create the brand, wait for legal approval (hours, in real life), then publish its page."""
    brand = create_brand_step(transform(input, lambda i: CreateBrandInput(name=i["name"])))
    approval = wait_for_legal_approval_step({"to": input.legal_contact, "brand": brand})
    pages = publish_brands_step(transform(brand, lambda b: [b]))
    return WorkflowResponse({"brand": brand, "approval": approval, "pages": pages})


# -- import-brand-catalog: the crash ---------------------------------------------------------------


class CatalogInput(TypedDict):
    """Input of ``import-brand-catalog``: the brand, and the directory of the invocation log."""

    brand: str
    workdir: str


_hang_in_import = False  # set by the worker: import-products stops half-way, where the demo kills it


def _log_invocation(input: CatalogInput, ctx: StepContext) -> None:
    line = json.dumps({"step": ctx.step_name, "pid": os.getpid(), "attempt": ctx.attempt,
                       "key": ctx.idempotency_key})
    with open(Path(input["workdir"]) / "invocations.log", "a") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


def fetch_catalog(input: CatalogInput, ctx: StepContext) -> list[str]:
    """Download the brand's product list (here: made up)."""
    _log_invocation(input, ctx)
    return [f"{input['brand']} {item}" for item in ("anvil", "rocket skates", "giant magnet", "tornado seeds")]


async def import_products(input: dict[str, Any], ctx: StepContext) -> int:
    """Import the products in batches. A real import would upsert by ``ctx.idempotency_key`` (plus a
    batch number), so that running it again after a crash writes nothing twice."""
    catalog: CatalogInput = input["catalog"]
    _log_invocation(catalog, ctx)
    products: list[str] = input["products"]
    imported = 0
    for start in range(0, len(products), 2):
        batch = products[start:start + 2]
        await asyncio.sleep(0.01)  # "write" the batch
        imported += len(batch)
        if _hang_in_import:
            (Path(catalog["workdir"]) / "worker-in-import-products").write_text(str(os.getpid()))
            await asyncio.sleep(3600)  # the demo kills the worker here, after the first batch
    return imported


def index_catalog(input: dict[str, Any], ctx: StepContext) -> str:
    """Rebuild the search index for the brand."""
    _log_invocation(input["catalog"], ctx)
    return f"indexed {input['count']} products"


fetch_catalog_step = create_step("fetch-catalog", fetch_catalog)
import_products_step = create_step("import-products", import_products)
index_catalog_step = create_step("index-catalog", index_catalog)


@workflow({"name": "import-brand-catalog", "store": True, "retention_time": 3600})
def import_brand_catalog_workflow(input: Ref[CatalogInput]) -> WorkflowResponse[str]:
    """Fetch a catalog, import its products, index them: three steps, checkpointed one by one."""
    products = fetch_catalog_step(input)
    count = import_products_step({"catalog": input, "products": products})
    return WorkflowResponse(index_catalog_step({"catalog": input, "count": count}))


async def _worker(database_url: str, workdir: str) -> None:
    """The worker process: run ``import-brand-catalog`` until the demo kills it."""
    global _hang_in_import
    _hang_in_import = True
    async with WorkflowEngine(database_url, lease_ttl=WORKER_LEASE_TTL) as engine:
        await engine.run(import_brand_catalog_workflow, CatalogInput(brand="Acme", workdir=workdir),
                         transaction_id=CATALOG_TRANSACTION)


# -- the demo --------------------------------------------------------------------------------------

Expect = Callable[[bool, str], None]


def _heading(title: str) -> None:
    print()
    print(title)
    print("=" * len(title))


def _steps(execution: WorkflowExecution) -> dict[str, str]:
    """``{step name: "invoke state/status"}`` from the stored ``execution`` record."""
    steps = (execution.execution or {}).get("steps", {})
    return {rec["definition"]["action"]: f"{rec['invoke']['state']}/{rec['invoke']['status']}"
            for step_id, rec in steps.items() if step_id != "_root"}


def _print_execution(execution: WorkflowExecution, indent: str = "    ") -> None:
    record = execution.to_dict()
    for key in ("id", "workflow_id", "transaction_id", "run_id", "state", "retention_time"):
        print(f"{indent}{key:<16}{record[key]}")
    print(f"{indent}{'created_at':<16}{record['created_at']}")
    print(f"{indent}{'updated_at':<16}{record['updated_at']}")
    for name, state in _steps(execution).items():
        print(f"{indent}{'step':<16}{name}: {state}")
    data = (execution.context or {}).get("data", {})
    print(f"{indent}{'payload':<16}{json.dumps(data.get('payload'))}")
    for name, output in data.get("invoke", {}).items():
        print(f"{indent}{'output':<16}{name}: {json.dumps(output)}")


async def _stored_execution(engine: WorkflowEngine, expect: Expect) -> None:
    _heading("5. A stored execution, listed from the engine")
    result = await register_brand_workflow(engine.container).run({"name": "Wayne Enterprises"},
                                                                 transaction_id="register-wayne")
    print(f"  register-brand(container).run(...) -> {result.transaction.state}, result {result.result!r}")
    executions = await engine.list_workflow_executions({"transaction_id": "register-wayne"})
    print('  engine.list_workflow_executions({"transaction_id": "register-wayne"}):')
    for execution in executions:
        _print_execution(execution)
    expect(len(executions) == 1, "one stored execution should be listed")
    if executions:
        stored = executions[0]
        expect(stored.state == "done" and stored.workflow_id == "register-brand", "the stored run should be done")
        expect(_steps(stored) == {"create-brand": "done/ok"}, "the stored step should be done/ok")
        expect(stored.retention_time == 3600, "retention_time should be stored (seconds)")
        data = (stored.context or {}).get("data", {})
        expect(data.get("invoke", {}).get("create-brand") == result.result, "the step output should be stored")


async def _long_running_step(engine: WorkflowEngine, expect: Expect) -> None:
    _heading("6. A long-running step, completed from outside")
    events: list[str] = []

    def on_event(event: dict[str, Any]) -> None:
        step = event.get("step")
        text = event["event_type"]
        if step:
            text += f" {step['definition']['action']}"
        if "state" in event:
            text += f" ({event['state']})"
        events.append(text)

    await engine.subscribe("launch-brand", on_event, subscriber_id="demo")
    payload = LaunchBrandInput(name="Stark Industries", legal_contact="legal@example.test")
    first = await launch_brand_workflow(engine.container).run(payload, transaction_id="launch-stark")
    ack = first.acknowledgement
    print(f"  launch-brand.run(...) returned at once: state {first.transaction.state}, "
          f"has_finished={ack.has_finished}")
    running = await engine.get_running_transaction("launch-brand", "launch-stark")
    [stored] = await engine.list_workflow_executions({"transaction_id": "launch-stark"})
    print(f"  stored: {stored.state}; steps {_steps(stored)}")
    mailer: Mailer = engine.container.resolve("mailer")
    request = mailer.sent[-1]["subject"] if mailer.sent else "(none)"
    print(f"  e-mail sent by the async step: {request!r}")
    expect(first.transaction.state == "invoking" and not ack.has_finished, "the run should return while waiting")
    expect(running is not None and running.state == "invoking", "get_running_transaction should see it running")
    expect(_steps(stored).get("wait-for-legal-approval") == "invoking/waiting_response",
           "the async step should be waiting for its response")

    key = "launch-brand:launch-stark:wait-for-legal-approval:invoke"
    answer = Approval(approved_by="legal@example.test", reference="LGL-1041")
    print(f"  legal approves: await engine.set_step_success(\n      {key!r},\n      {answer!r})")
    done = await engine.set_step_success(key, answer)
    print(f"    -> {done.transaction.state}; approval {done.result['approval']!r}; pages {done.result['pages']!r}")
    [stored] = await engine.list_workflow_executions({"transaction_id": "launch-stark"})
    print(f"  stored: {stored.state}; steps {_steps(stored)}")
    try:
        await engine.set_step_success(key, answer)
    except StepworkError as err:
        print(f"  a second answer is refused: {err.type}: {err}")
        expect(err.type == "not_allowed", "a duplicate completion should be refused with not_allowed")
    else:
        expect(False, "a duplicate completion should be refused")
    print("  events seen by engine.subscribe(\"launch-brand\", ...):")
    print(textwrap.fill(", ".join(events), width=100, initial_indent="    ", subsequent_indent="    ",
                        break_on_hyphens=False))
    await engine.unsubscribe("launch-brand", "demo")
    expect(done.transaction.state == "done" and done.result["approval"] == answer,
           "set_step_success should finish the workflow with the approval")
    expect(_steps(stored) == {"create-brand": "done/ok", "wait-for-legal-approval": "done/ok",
                              "publish-brands": "done/ok"}, "every step should end done/ok")
    expect("on_step_awaiting wait-for-legal-approval" in events and "on_resume" in events,
           "subscribers should see the step waiting and the run resuming")


def _invocations(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "invocations.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def _wait_for(condition: Callable[[], Awaitable[bool]], within: float, poll: float = 0.02) -> bool:
    """Poll ``condition`` until it is true (``True``) or ``within`` seconds have passed (``False``)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await condition():
            return True
        await asyncio.sleep(poll)
    return False


async def _crash_recovered(engine: WorkflowEngine, database_url: str, workdir: Path, expect: Expect) -> None:
    _heading("7. A worker killed in the middle of a step; this process takes over")
    ready = workdir / "worker-in-import-products"
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "examples.brand.durable", "worker", database_url, str(workdir), cwd=ROOT)

    async def worker_ready() -> bool:
        return ready.exists()

    try:
        print(f"  worker process {worker.pid} runs import-brand-catalog ({CATALOG_TRANSACTION}), "
              f"lease_ttl={WORKER_LEASE_TTL}")
        if not await _wait_for(worker_ready, within=20):
            expect(False, "the worker never reached import-products")
            return
        worker.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        code = await worker.wait()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    print(f"  the worker is inside import-products: killed with SIGKILL (exit code {code})")
    expect(code == -signal.SIGKILL, "the worker should have been killed by SIGKILL")
    [stored] = await engine.list_workflow_executions({"transaction_id": CATALOG_TRANSACTION})
    print(f"  stored right after the kill: {stored.state}; steps {_steps(stored)}")
    expect(_steps(stored).get("import-products") == "invoking/waiting_response",
           "import-products should be stored as running (invoking/waiting_response)")

    async def finished() -> bool:
        rows = await engine.list_workflow_executions({"transaction_id": CATALOG_TRANSACTION})
        return bool(rows) and rows[0].state in ("done", "failed", "reverted")

    recovered = await _wait_for(finished, within=20)
    took = time.monotonic() - killed_at
    [stored] = await engine.list_workflow_executions({"transaction_id": CATALOG_TRANSACTION})
    result = (stored.context or {}).get("data", {}).get("invoke", {}).get("index-catalog")
    print(f"  this process's engine (poll_interval={engine.poll_interval}) took it over {took:.1f} s after the kill,")
    print(f"  once the dead worker's lease ran out, and finished it: {stored.state}, {result!r}")
    print(f"  steps {_steps(stored)}")
    expect(recovered and stored.state == "done", "the demo's engine should finish the execution")

    calls = _invocations(workdir)
    print("  invocations, from the steps' log:")
    me = os.getpid()
    for name in ("fetch-catalog", "import-products", "index-catalog"):
        mine = [c for c in calls if c["step"] == name]
        where = ", ".join(f"attempt {c['attempt']} in {'this process' if c['pid'] == me else 'the worker'}"
                          for c in mine)
        print(f"    {name:<16} {len(mine)}x  ({where})")
    keys = {c["key"] for c in calls if c["step"] == "import-products"}
    print(f"  both runs of import-products had the same idempotency key: {sorted(keys)}")
    counts = {name: [c["pid"] == me for c in calls if c["step"] == name]
              for name in ("fetch-catalog", "import-products", "index-catalog")}
    expect(counts == {"fetch-catalog": [False], "import-products": [False, True], "index-catalog": [True]},
           "fetch-catalog should run once (worker), import-products twice (worker, then here), "
           "index-catalog once (here)")
    expect(len(keys) == 1, "the re-invoked step should keep its idempotency key")


async def show_durable_engine(expect: Expect) -> None:
    """Sections 5 to 7 of the demo: an engine on a SQLite file in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="stepwork-demo-") as tmp:
        workdir = Path(tmp)
        database_url = f"sqlite:///{workdir / 'stepwork.db'}"
        print()
        print(f"The durable engine: WorkflowEngine({database_url!r}) with its own services")
        async with WorkflowEngine(database_url, poll_interval=0.05, container=make_container()) as engine:
            await _stored_execution(engine, expect)
            await _long_running_step(engine, expect)
            await _crash_recovered(engine, database_url, workdir, expect)
            executions, count = await engine.list_and_count_workflow_executions(order={"created_at": "ASC"})
            print()
            print(f"  all stored executions ({count}):")
            for execution in executions:
                print(f"    {execution.workflow_id:<22} {execution.transaction_id:<18} {execution.state:<8} "
                      f"created {execution.to_dict()['created_at']}")
            expect(count == 3, "three executions should be stored")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "worker":
        sys.exit("usage: python -m examples.brand.durable worker DATABASE_URL WORKDIR")
    asyncio.run(_worker(sys.argv[2], sys.argv[3]))
