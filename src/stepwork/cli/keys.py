"""``stepwork keys create|list|revoke``: the API keys of the HTTP admin API (stored hashed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from stepwork.cli.common import DatabaseUrlOption, JsonOption, run_async, settings_for
from stepwork.cli.console import err, out, print_json

if TYPE_CHECKING:
    from stepwork.http.keys import ApiKeyInfo, ApiKeys

__all__ = ["app", "create_key", "list_keys", "revoke_key"]

T = TypeVar("T")

app = typer.Typer(help="API keys of the admin API (stepwork serve): create, list, revoke.", no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]})


def _with_keys(database_url: str | None, work: Callable[[ApiKeys], Awaitable[T]]) -> T:
    from stepwork.http.keys import ApiKeys  # loaded by the key commands only (it brings SQLAlchemy)

    async def go() -> T:
        keys = ApiKeys(database_url)
        try:
            return await work(keys)
        finally:
            await keys.close()
    return run_async(go())


def _info_dict(info: ApiKeyInfo) -> dict[str, str | None]:
    def iso(value: object) -> str | None:
        return None if value is None else value.isoformat()  # type: ignore[attr-defined]
    return {"id": info.id, "name": info.name, "prefix": info.prefix, "created_at": iso(info.created_at),
            "revoked_at": iso(info.revoked_at), "last_used_at": iso(info.last_used_at)}


@app.command("create")
def create_key(
    name: Annotated[str, typer.Argument(show_default=False, help="A name that says who or what uses the key.")],
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create an API key and print its secret, once: it is stored only hashed.

    Examples:

        stepwork keys create admin-page
        stepwork keys create ci --database-url postgresql://stepwork@localhost/stepwork
    """
    settings = settings_for(database_url=database_url, import_app=False)
    info, secret = _with_keys(settings.database_url, lambda keys: keys.create(name))
    console = out()
    console.print(f"Created API key {info.id} ({info.name}).")
    console.print(Text(secret, style="bold"))
    err().print(Text("Store this secret now: it is not shown again and cannot be recovered. Send it as "
                     "`Authorization: Bearer <secret>`.", style="yellow"))


@app.command("list")
def list_keys(json_out: JsonOption = False, database_url: DatabaseUrlOption = None) -> None:
    """List the API keys (never their secrets), revoked ones included.

    Examples:

        stepwork keys list
        stepwork keys list --json
    """
    settings = settings_for(database_url=database_url, import_app=False)
    infos = _with_keys(settings.database_url, lambda keys: keys.list())
    if json_out:
        print_json({"api_keys": [_info_dict(i) for i in infos]})
        return
    console = out()
    if not infos:
        console.print("No API keys. Create one with: stepwork keys create NAME")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("id", "name", "prefix", "created at", "last used", "status"):
        table.add_column(column, no_wrap=True)

    def local(value: object) -> str:
        return "" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")  # type: ignore[attr-defined]
    for i in infos:
        status = Text("revoked", style="red") if i.revoked_at is not None else Text("active", style="green")
        table.add_row(i.id, i.name, i.prefix + "…", local(i.created_at), local(i.last_used_at), status)
    console.print(table)


@app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(metavar="ID", show_default=False, help="The key's id (apk_...).")],
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke an API key: requests with it are refused (within seconds in running servers).

    Examples:

        stepwork keys revoke apk_01JBX7R9R1N6Q1GZ8V8T2YV3QK
    """
    settings = settings_for(database_url=database_url, import_app=False)
    info = _with_keys(settings.database_url, lambda keys: keys.revoke(key_id))
    out().print(f"Revoked API key {info.id} ({info.name}).")
