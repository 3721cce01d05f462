"""The brand demo: ``python -m examples.brand.demo`` (what ``make demo`` runs).

Runs the brand workflows against the in-memory services of :mod:`examples.brand.store` and prints
what each run did: its final state, its result or error, the ``invoke``/``compensate`` state of
every step (from ``result.transaction.execution["steps"]``) and the brands before and after.
Then :func:`examples.brand.durable.show_durable_engine` runs the durable part on a
``WorkflowEngine`` over a SQLite file in a temporary directory: a stored execution listed back, a
long-running step completed from outside, and a worker process killed mid-step whose execution this
process takes over and finishes.

Every outcome is checked; the exit code is 0 only if all of them are what this file expects.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable
from typing import Any

from examples.brand.durable import show_durable_engine
from examples.brand.store import audit_log, brand_store, cms, container, mailer
from examples.brand.workflows import (
    CreateBrandsInput,
    ReplaceBrandInput,
    create_brand_and_publish_workflow,
    create_brand_workflow,
    create_brands_with_audit_workflow,
    delete_brand_workflow,
    replace_brand_workflow,
)
from stepwork import StepworkError, WorkflowResult

problems: list[str] = []


# -- the application's hook handler -------------------------------------------------------------


def brand_handles(values: dict[str, Any]) -> dict[str, Any]:
    """``brands_created`` hook handler: a URL handle per new brand ("Initech Labs" -> "initech-labs")."""
    return {"handles": {b["id"]: re.sub(r"[^a-z0-9]+", "-", b["name"].lower()).strip("-")
                        for b in values["brands"]}}


create_brands_with_audit_workflow.hooks.brands_created(brand_handles)


# -- printing and checking ----------------------------------------------------------------------


def heading(title: str) -> None:
    print()
    print(title)
    print("=" * len(title))


def expect(condition: bool, what: str) -> None:
    """Record (and print) an outcome that is not what the demo expects."""
    if not condition:
        problems.append(what)
        print(f"  !! UNEXPECTED: {what}")


def brands_line() -> str:
    brands = brand_store.list()
    return ", ".join(f"{b['id']} {b['name']!r}" for b in brands) if brands else "(none)"


def step_states(result: WorkflowResult[Any]) -> dict[str, tuple[str, str]]:
    """``{step name: (invoke state, compensate state)}`` from the execution record."""
    steps = result.transaction.execution["steps"]
    return {rec["definition"]["action"]: (rec["invoke"]["state"], rec["compensate"]["state"])
            for step_id, rec in steps.items() if step_id != "_root"}


def print_steps(result: WorkflowResult[Any], indent: str = "  ") -> None:
    """One line per step: its invoke and compensate ``state/status``."""
    steps = [rec for step_id, rec in result.transaction.execution["steps"].items() if step_id != "_root"]
    width = max(len(rec["definition"]["action"]) for rec in steps)
    print(f"{indent}{'step':<{width}}  {'invoke':<26}  compensate")
    for rec in steps:
        invoke = f"{rec['invoke']['state']}/{rec['invoke']['status']}"
        compensate = f"{rec['compensate']['state']}/{rec['compensate']['status']}"
        print(f"{indent}{rec['definition']['action']:<{width}}  {invoke:<26}  {compensate}")


def print_run(result: WorkflowResult[Any], indent: str = "  ") -> None:
    """The run's transaction, state, result or errors, and steps."""
    print(f"{indent}transaction {result.transaction.transaction_id}: {result.transaction.state}")
    if result.errors:
        for failure in result.errors:
            print(f"{indent}error in step {failure.action!r}: {failure.error['name']}: {failure.error['message']}")
    else:
        print(f"{indent}result: {result.result!r}")
    print_steps(result, indent)


def timeline() -> dict[str, Callable[[dict[str, Any]], None]]:
    """Per-run event handlers (``run(events=...)``) printing each step as it starts and ends."""

    def on(what: str, show_brands: bool = False) -> Callable[[dict[str, Any]], None]:
        def handler(event: dict[str, Any]) -> None:
            step = event["step"]
            text = what
            if event["event_type"] == "on_step_begin":  # fired for invoke and compensate attempts
                text = "compensate" if step["compensate"]["state"] == "compensating" else "invoke"
                if step["attempts"] > 1:
                    text += f" (attempt {step['attempts']})"
            line = f"    {text:<20} {step['definition']['action']}"
            if show_brands:
                line += f"   -> brands: {', '.join(b['name'] for b in brand_store.list())}"
            print(line)
        return handler

    return {
        "on_step_begin": on("begin"),
        "on_step_success": on("done", show_brands=True),
        "on_step_failure": on("failed"),
        "on_compensate_begin": lambda event: print("    compensation begins"),
        "on_compensate_step_success": on("compensated", show_brands=True),
        "on_finish": lambda event: print(f"    finished: {event['state']}"),
    }


# -- the scenarios ------------------------------------------------------------------------------


async def create_and_delete() -> None:
    heading("1. create-brand-basic and delete-brand-basic")
    print(f"  brands before: {brands_line()}")
    for name in ("Acme", "Umbrella"):
        created = await create_brand_workflow(container).run({"name": name})
        print(f"  create-brand {name!r} -> {created.transaction.state}, result {created.result!r}")
        expect(created.transaction.state == "done", f"create-brand {name!r} should end done")
    umbrella = next(b for b in brand_store.list() if b["name"] == "Umbrella")
    result = await delete_brand_workflow(container).run({"id": umbrella["id"]})
    print(f"  delete-brand {umbrella['id']!r}:")
    print_run(result, indent="    ")
    print(f"  brands after: {brands_line()}")
    expect(result.result == {"id": umbrella["id"], "object": "brand", "deleted": True},
           "delete-brand should return {id, object, deleted}")
    expect(step_states(result) == {"delete-brand": ("done", "dormant")}, "delete-brand should be done, not compensated")
    expect([b["name"] for b in brand_store.list()] == ["Acme"], "only Acme should be left")


async def richer_workflow() -> None:
    heading("2. create-brands-with-audit: transform, hook, parallelize, when")
    payload: CreateBrandsInput = {"names": ["  globex ", "initech labs", "GLOBEX"],
                                  "requested_by": "ana@example.test", "notify": True}
    print(f"  input: {payload!r}")
    result = await create_brands_with_audit_workflow(container).run(payload)
    out = result.result
    print(f"  transaction {result.transaction.transaction_id}: {result.transaction.state}")
    print(f"  brands created (names normalized by a transform): {[b['name'] for b in out['brands']]}")
    print(f"  audit entry: {out['audit_entry']!r}")
    print(f"  CMS pages: {out['pages']!r}")
    print(f"  e-mail (notify=True, so the when-branch ran): {out['email']!r}")
    print(f"  hook result (validated into {type(out['handles']).__name__}): {out['handles']!r}")
    print_steps(result)
    expect(result.transaction.state == "done", "create-brands-with-audit should end done")
    expect([b["name"] for b in out["brands"]] == ["Globex", "Initech Labs"], "names should be normalized")
    expect(set(out["pages"]) == {b["id"] for b in out["brands"]}, "every new brand should have a page")
    expect(out["handles"] is not None and "initech-labs" in out["handles"].handles.values(),
           "the hook handler's result should be in the workflow result")
    expect(step_states(result)["notify-brand-team"] == ("done", "dormant"), "notify-brand-team should run")

    payload = CreateBrandsInput(names=["stark industries"], requested_by="bob@example.test")
    result = await create_brands_with_audit_workflow(container).run(payload)
    skipped = step_states(result)["notify-brand-team"][0]
    print(f"  again with {payload!r}:")
    print(f"    {result.transaction.state}; notify-brand-team {skipped}; e-mail {result.result['email']!r}")
    expect(result.transaction.state == "done" and skipped == "skipped", "without notify the e-mail step is skipped")
    print(f"  brands after: {brands_line()}")
    print(f"  audit log: {len(audit_log.entries)} entries; e-mails sent: {len(mailer.sent)}")


async def rollback_on_failure() -> None:
    heading("3. create-brand-and-publish while the CMS is down: rolled back")
    before = brand_store.list()
    print(f"  brands before: {brands_line()}")
    cms.available = False
    calls = cms.calls
    print("  timeline (events=...):")
    result = await create_brand_and_publish_workflow(container).run(
        {"name": "Hooli"}, throw_on_error=False, events=timeline())
    cms.available = True
    print_run(result)
    print(f"  the CMS was called {cms.calls - calls} times (max_retries=2: three attempts)")
    print(f"  brands after: {brands_line()}")
    expect(result.transaction.state == "reverted", "the run should end reverted")
    expect(result.errors[0].error["message"] == "CMS unavailable (HTTP 503)", "the CMS error should be reported")
    expect(step_states(result) == {"create-brand": ("done", "reverted"), "publish-brands": ("failed", "reverted")},
           "create-brand should be done then reverted; publish-brands failed then reverted")
    expect(cms.calls - calls == 3, "publish-brands should be attempted three times")
    expect(brand_store.list() == before, "the rollback should leave the brands as they were")


async def rollback_nested() -> None:
    heading("4. replace-brand with a name that is taken: nested workflows reverted")
    acme = next(b for b in brand_store.list() if b["name"] == "Acme")
    before = brand_store.list()
    print(f"  brands before: {brands_line()}")
    payload: ReplaceBrandInput = {"brand_id": acme["id"], "new_name": "Globex"}
    print(f"  input: {payload!r}")
    print("  timeline (events=...):")
    result = await replace_brand_workflow(container).run(payload, throw_on_error=False, events=timeline())
    print_run(result)
    print(f"  brands after: {brands_line()}")
    expect(result.transaction.state == "reverted", "the run should end reverted")
    expect(step_states(result) == {"delete-brand-basic-as-step": ("done", "reverted"),
                                   "create-brand-basic-as-step": ("failed", "reverted")},
           "the nested delete should be done then reverted; the nested create failed")
    expect(brand_store.get(acme["id"]) == acme, "Acme should be restored under its own id")
    expect(brand_store.list() == before, "the rollback should leave the brands as they were")

    print("  the same run with throw_on_error=True (the default) raises the step's own exception:")
    try:
        await replace_brand_workflow(container).run(payload)
    except StepworkError as err:
        print(f"    {type(err).__name__} (type {err.type!r}): {err}")
        expect(err.type == "duplicate_error", "the store's duplicate_error should be raised")
    else:
        expect(False, "replace-brand should have raised")
    expect(brand_store.list() == before, "the second rollback should leave the brands as they were too")


async def main() -> int:
    await create_and_delete()
    await richer_workflow()
    await rollback_on_failure()
    await rollback_nested()
    heading("Final state")
    print(f"  brands: {brands_line()}")
    print(f"  CMS pages: {sorted(cms.pages)}")
    print(f"  audit log: {[(e['action'], e['brand_ids']) for e in audit_log.entries]}")
    print(f"  e-mails: {[m['subject'] for m in mailer.sent]}")
    await show_durable_engine(expect)
    print()
    if problems:
        print(f"{len(problems)} unexpected outcome(s):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("Every run ended as expected.")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
