"""``stepwork demo``: store example executions of the demo workflows, to look at with the other commands."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from stepwork.cli.common import DatabaseUrlOption, open_engine, run_async, settings_for
from stepwork.cli.config import Settings
from stepwork.cli.console import out, state_text
from stepwork.errors import StepworkError

__all__ = ["demo"]

_RUNS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("brand_created", {"name": "Acme", "notify": True}, "completes"),
    ("brand_rolled_back", {"name": "Globex", "cms_down": True}, "fails, is rolled back"),
    ("brand_approval", {"name": "Initech"}, "waits for an approval"),
)


def demo(database_url: DatabaseUrlOption = None) -> None:
    """Store example executions of the demo workflows, to look at.

    A brand creation that completes, one that fails halfway and is rolled back, and one waiting on a
    long-running step; kept for a week. Each run adds three new ones.

    Examples:

        stepwork demo
        stepwork demo --database-url sqlite:///demo.db && stepwork executions list -d sqlite:///demo.db
    """
    settings = settings_for(database_url=database_url, import_app=False)
    stored = run_async(_populate(settings))
    console = out()
    table = Table(show_edge=False, pad_edge=False, title="Stored in " + settings.database_label,
                  title_justify="left")
    for column in ("execution", "workflow", "state", "what happened"):
        table.add_column(column, no_wrap=column == "execution")
    for execution_id, workflow_id, state, what in stored:
        table.add_row(execution_id, workflow_id, state_text(state), what)
    console.print(table)
    # The label, not the URL: a password in the URL is not printed (type it in where it shows ***).
    flag = "" if settings.database_url is None else f" --database-url {settings.database_label}"
    console.print()
    console.print("Look at them:")
    console.print(f"  stepwork executions list{flag}")
    if stored:  # (a run is not stored when the database refused it; the table above then shows fewer)
        shown = next((row for row in stored if row[3] == _RUNS[1][2]), stored[0])  # the rolled-back one
        console.print(f"  stepwork executions show {shown[0]}{flag}")
    console.print("  stepwork graph stepwork.cli.demo_workflows:brand_created")
    console.print(f"  stepwork keys create me{flag} && stepwork serve --app stepwork.cli.demo_workflows{flag}")


async def _populate(settings: Settings) -> list[tuple[str, str, str, str]]:
    from stepwork.cli import demo_workflows  # defined (registered) when the demo runs, not on every command

    stored: list[tuple[str, str, str, str]] = []
    async with open_engine(settings) as engine:
        for attribute, payload, what in _RUNS:
            workflow = getattr(demo_workflows, attribute)
            result = await engine.run(workflow, payload, throw_on_error=False)
            info = result.transaction
            try:
                execution = await engine.retrieve_workflow_execution(
                    {"workflow_id": workflow.name, "transaction_id": info.transaction_id, "run_id": info.run_id})
            except StepworkError:
                continue
            stored.append((execution.id, workflow.name, execution.state, what))
    return stored
