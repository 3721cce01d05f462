"""``stepwork workers``: the engines sharing the database and their health, from their heartbeats."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from stepwork.cli.common import DatabaseUrlOption, JsonOption, open_store_only, run_async, settings_for
from stepwork.cli.console import out, print_json
from stepwork.engine.heartbeat import describe_workers

__all__ = ["workers"]

_STYLE = {"alive": "green", "stopped": "dim", "gone": "red"}


def workers(json_out: JsonOption = False, database_url: DatabaseUrlOption = None) -> None:
    """List the workers (every started engine: `stepwork worker`, `stepwork serve`, your own
    processes) seen on the database in the last day: alive, stopped, or gone (silent for longer than
    its lease; its executions are taken over by the others), with its last heartbeat, the executions
    whose lease it holds, and the workflow versions its process defines.

    Examples:

        stepwork workers
        stepwork workers --json | jq '.workers[] | select(.status == "alive") | .id'
    """
    settings = settings_for(database_url=database_url, import_app=False)

    async def go() -> list[dict[str, Any]]:
        async with open_store_only(settings) as engine:
            return await describe_workers(engine)

    rows = run_async(go())
    if json_out:
        print_json({"workers": rows})
        return
    console = out()
    if not rows:
        console.print(f"No worker has run on {settings.database_label} in the last day.")
        return
    table = Table(show_edge=False, pad_edge=False)
    for name in ("worker", "status", "last heartbeat", "owns", "slots", "workflows"):
        table.add_column(name, no_wrap=name != "workflows")
    for w in rows:
        versions = ", ".join(f"{v['workflow_id']}@{v['version']}" for v in w["workflows"]) or "-"
        table.add_row(w["id"], Text(w["status"], style=_STYLE[w["status"]]),
                      f"{w['seconds_since_heartbeat']:.0f} s ago", str(w["executions_owned"]),
                      str(w["concurrency"]), versions)
    console.print(table)
