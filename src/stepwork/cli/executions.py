"""``stepwork executions list|show``: the stored executions, as a table or one as a tree of steps."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from stepwork.cli.common import DatabaseUrlOption, JsonOption, open_store_only, run_async, settings_for
from stepwork.cli.console import out, print_json, state_text
from stepwork.cli.errors import CliError
from stepwork.cli.tree import execution_tree
from stepwork.engine import listing
from stepwork.engine.records import WorkflowExecution
from stepwork.orchestration.states import TransactionState

__all__ = ["app", "list_executions", "show_execution"]

_STATES = tuple(state.value for state in TransactionState)

app = typer.Typer(help="Read stored executions: list them (filtered, paged) or show one.", no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]})


def _one_or_many(values: list[str] | None) -> str | list[str] | None:
    if not values:
        return None
    return values[0] if len(values) == 1 else list(values)


def progress(execution: WorkflowExecution) -> str:
    """``"n of m steps"``: the steps whose invoke is done (or skipped) out of all."""
    steps = [rec for key, rec in ((execution.execution or {}).get("steps") or {}).items() if key != "_root"]
    finished = sum(1 for rec in steps if (rec.get("invoke") or {}).get("state") in ("done", "skipped",
                                                                                      "skipped_failure"))
    return f"{finished} of {len(steps)} steps"


def _time(value: str, flag: str) -> dt.datetime:
    """An ISO-8601 date or time of an option (a time without zone is local time)."""
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError.usage(f"{flag} takes an ISO-8601 date or time (2026-01-31, 2026-01-31T12:00:00Z), "
                             f"got {value!r}") from None
    return when if when.tzinfo is not None else when.astimezone()


@app.command("list")
def list_executions(
    workflow_id: Annotated[list[str] | None, typer.Option("--workflow-id", "-w", show_default=False,
                                                          help="Only this workflow (repeat for several).")] = None,
    state: Annotated[list[str] | None, typer.Option(
        "--state", "-s", show_default=False,
        help="Only this state: not_started, invoking, waiting_to_compensate, compensating, done, reverted, "
             "failed (repeat for several).")] = None,
    transaction_id: Annotated[list[str] | None, typer.Option(
        "--transaction-id", "-t", show_default=False, help="Only this transaction (repeat for several).")] = None,
    q: Annotated[str | None, typer.Option("-q", "--query", show_default=False,
                                          help="Text searched (case-insensitive) in workflow id, transaction id, "
                                               "state and run id.")] = None,
    created_after: Annotated[str | None, typer.Option(
        "--created-after", metavar="TIME", show_default=False,
        help="Only executions created after this ISO-8601 time (e.g. 2026-01-31 or 2026-01-31T12:00:00Z).")] = None,
    created_before: Annotated[str | None, typer.Option(
        "--created-before", metavar="TIME", show_default=False,
        help="Only executions created before this ISO-8601 time.")] = None,
    stale: Annotated[bool, typer.Option(
        "--stale", help="Only unfinished executions whose workflow version no live worker has (they wait for "
                        "a process that defines that version; see docs/workers.md).")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="How many to show.")] = 20,
    offset: Annotated[int, typer.Option("--offset", min=0, help="How many to skip.")] = 0,
    order: Annotated[str, typer.Option("--order", help="Columns, comma-separated; a leading - sorts descending "
                                                         "(id, workflow_id, transaction_id, run_id, state, created_at, "
                                                         "updated_at).")] = "-created_at",
    json_out: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List stored executions, newest first, filtered as the admin API's list route can be (workflow,
    state, transaction, text, creation time).

    Examples:

        stepwork executions list
        stepwork executions list --state failed --state reverted
        stepwork executions list --workflow-id create-brand -q acme --limit 50 --offset 50
        stepwork executions list --created-after 2026-01-01 --created-before 2026-02-01
        stepwork executions list --stale
        stepwork executions list --json | jq '.workflow_executions[].id'
    """
    unknown = [s for s in state or [] if s not in _STATES]
    if unknown:
        raise CliError.usage(f"unknown state {', '.join(map(repr, unknown))}; states: {', '.join(_STATES)}")
    settings = settings_for(database_url=database_url, import_app=False)
    filters: dict[str, Any] = {"workflow_id": _one_or_many(workflow_id), "state": _one_or_many(state),
                               "transaction_id": _one_or_many(transaction_id), "q": q}
    filters = {k: v for k, v in filters.items() if v is not None}
    if stale:
        filters["stale"] = True
    created = {op: _time(value, flag) for op, value, flag in (("$gt", created_after, "--created-after"),
                                                             ("$lt", created_before, "--created-before"))
               if value is not None}
    if created:
        filters["created_at"] = created
    columns = [c.strip() for c in order.split(",") if c.strip()]

    async def go() -> tuple[list[WorkflowExecution], int]:
        async with open_store_only(settings) as engine:
            return await listing.list_and_count(engine, filters, offset, limit, columns)

    rows, count = run_async(go())
    if json_out:
        print_json({"workflow_executions": [r.to_dict() for r in rows], "count": count, "offset": offset,
                    "limit": limit})
        return
    console = out()
    if not rows:
        console.print(f"No executions{' match' if filters else ''} (of {count}) in {settings.database_label}.")
        return
    table = Table(show_edge=False, pad_edge=False)
    for name in ("id", "workflow", "transaction", "state", "progress", "created at"):
        table.add_column(name, no_wrap=name in ("id", "created at"))
    for r in rows:
        table.add_row(r.id, r.workflow_id, r.transaction_id, state_text(r.state), progress(r),
                      r.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"))
    console.print(table)
    console.print(Text(f"showing {offset + 1}\N{EN DASH}{offset + len(rows)} of {count}", style="dim"))


@app.command("show")
def show_execution(
    execution_id: Annotated[str, typer.Argument(metavar="ID", show_default=False,
                                                help="The execution id (wf_exec_...).")],
    json_out: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Show one stored execution: a tree of its steps with their invoke and compensate states, outputs and
    errors.

    Examples:

        stepwork executions show wf_exec_01JBX7R9R1N6Q1GZ8V8T2YV3QK
        stepwork executions show wf_exec_01JBX7R9R1N6Q1GZ8V8T2YV3QK --json
    """
    settings = settings_for(database_url=database_url, import_app=False)
    if not execution_id.strip():
        raise CliError.usage("the execution id is empty")

    async def go() -> WorkflowExecution:
        async with open_store_only(settings) as engine:
            return await listing.retrieve(engine, execution_id)

    execution = run_async(go())
    if json_out:
        print_json({"workflow_execution": execution.to_dict()})
        return
    out().print(execution_tree(execution))
