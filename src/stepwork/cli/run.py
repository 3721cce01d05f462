"""``stepwork run MODULE:WORKFLOW``: run a workflow on the stored engine, showing its steps live."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import typer
from rich.text import Text

from stepwork.cli.application import load_app
from stepwork.cli.common import AppOption, DatabaseUrlOption, run_async, settings_for
from stepwork.cli.config import Settings
from stepwork.cli.console import out, state_text, to_json
from stepwork.cli.errors import EXIT_FAILED
from stepwork.cli.live import StepDisplay
from stepwork.cli.loading import load_workflow, parse_input
from stepwork.engine.engine import WorkflowEngine
from stepwork.engine.ids import new_ulid
from stepwork.errors import StepworkError

__all__ = ["run"]

_FINISHED = ("done", "reverted", "failed")


def run(
    target: Annotated[str, typer.Argument(metavar="MODULE:WORKFLOW", show_default=False,
                                          help="The module and the workflow (its attribute name, or its registered "
                                               "name).")],
    input_: Annotated[str | None, typer.Option("--input", "-i", metavar="JSON|@FILE", show_default=False,
                                               help="The workflow's input: JSON text, or @path/to/input.json.")] = None,
    transaction_id: Annotated[str | None, typer.Option(
        "--transaction-id", "-t", show_default=False,
        help="The transaction id (default: auto-<ULID>). The id of an unfinished execution resumes it.")] = None,
    wait: Annotated[bool, typer.Option(
        "--wait/--no-wait", help="When the run waits (an async step, a retry timer), keep the engine running "
                                 "until the execution finishes.")] = False,
    database_url: DatabaseUrlOption = None,
    app: AppOption = None,
) -> None:
    """Run a workflow on the stored engine, showing its steps live.

    Prints the result (or the errors) and the execution id; exits 1 when the run ends reverted or
    failed. Without --wait, a run that waits (an async step, a retry timer) returns at once with its
    transaction id and state.

    Examples:

        stepwork run myapp.workflows:create_brand --input '{"name": "Acme"}'
        stepwork run myapp.workflows:create-brand --input @brand.json --transaction-id brand-acme
        stepwork run myapp.workflows:import_catalog --wait
    """
    settings = settings_for(app=app, database_url=database_url)
    workflow = load_workflow(target)
    payload = parse_input(input_)
    code = run_async(_run(settings, workflow, payload, transaction_id or f"auto-{new_ulid()}", wait))
    if code:
        raise typer.Exit(code)


async def _run(settings: Settings, workflow: Any, payload: Any, transaction_id: str, wait: bool) -> int:
    console = out()
    async with load_app(settings, engine_options={"poll_interval": 0.2}) as application:
        engine = application.engine
        console.print(Text.assemble("Running ", (workflow.name, "bold"), f" (transaction {transaction_id}) on "
                                    f"{Settings(database_url=application.database_url).database_label}"))
        display = StepDisplay(workflow.compiled.plan, console)
        await engine.subscribe(workflow.name, display.on_event, transaction_id=transaction_id)
        with display:
            result = await engine.run(workflow, payload, transaction_id=transaction_id, throw_on_error=False)
            display.update_from(result.transaction.execution)
            state = str(result.transaction.state.value)
            if wait and state not in _FINISHED:
                state = await _wait(engine, workflow.name, transaction_id, result.transaction.run_id, display)
        execution_id = await _execution_id(engine, workflow.name, transaction_id, result.transaction.run_id)
    _print_outcome(console, state, transaction_id, execution_id, result, display.finish)
    return EXIT_FAILED if state in ("reverted", "failed") else 0


async def _wait(engine: WorkflowEngine, workflow_id: str, transaction_id: str, run_id: str,
                display: StepDisplay) -> str:
    """Until the execution finishes (here, or in another process sharing the database): its state."""
    key = {"workflow_id": workflow_id, "transaction_id": transaction_id, "run_id": run_id}
    next_read = 0.0
    while display.finish is None:
        if time.monotonic() >= next_read:
            try:
                stored = await engine.retrieve_workflow_execution(key)
            except StepworkError as exc:
                if exc.type != StepworkError.Types.NOT_FOUND:
                    raise
                return "done"  # finished elsewhere and not kept (no retention_time)
            display.update_from(stored.execution or {})
            if stored.state in _FINISHED:
                return stored.state
            next_read = time.monotonic() + 1.0
        await asyncio.sleep(0.1)
    return str(display.finish.get("state"))


async def _execution_id(engine: WorkflowEngine, workflow_id: str, transaction_id: str, run_id: str) -> str | None:
    try:
        stored = await engine.retrieve_workflow_execution(
            {"workflow_id": workflow_id, "transaction_id": transaction_id, "run_id": run_id})
    except StepworkError:
        return None
    return stored.id


def _print_outcome(console: Any, state: str, transaction_id: str, execution_id: str | None, result: Any,
                   finish: dict[str, Any] | None) -> None:
    console.print()
    console.print(Text.assemble("state        ", state_text(state)))
    console.print(f"transaction  {transaction_id}")
    if execution_id is not None:
        console.print(f"execution    {execution_id}   (stepwork executions show {execution_id})")
    else:
        console.print("execution    not stored (the workflow is not stored, or keeps nothing once finished: "
                      "give it store=True and a retention_time)")
    if state not in _FINISHED:
        waiting = [name for name, row in _waiting(result)]
        console.print(f"waiting on   {', '.join(waiting) or 'a timer'}; it goes on when completed, in any process "
                      "sharing the database (stepwork worker, stepwork serve); --wait keeps this one running")
        return
    errors = finish.get("errors") if finish is not None else [e.to_dict() for e in result.errors]
    if finish is None and not result.acknowledgement.has_finished:
        console.print(f"finished in another process; see stepwork executions show {execution_id or ''}".rstrip())
        return
    if state == "done":
        value = finish.get("result") if finish is not None else result.result
        console.print("result")
        console.print(Text(to_json(value)), soft_wrap=True)
    else:
        console.print("errors")
        for error in errors or []:
            details = error.get("error") or {}
            console.print(Text.assemble("  ", (f"{error.get('action')}", "bold"), f" ({error.get('handler_type')}): ",
                                        (f"{details.get('name', 'Error')}: {details.get('message', '')}", "red")))


def _waiting(result: Any) -> list[tuple[str, dict[str, Any]]]:
    steps = result.transaction.execution.get("steps") or {}
    return [(rec["definition"]["action"], rec) for step_id, rec in steps.items()
            if step_id != "_root" and rec["invoke"]["status"] == "waiting_response"]
