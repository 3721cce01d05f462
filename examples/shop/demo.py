"""The shop demo: ``python -m examples.shop.demo`` (the second half of ``make demo``).

It serves the shop application (:mod:`examples.shop.app`) with ``stepwork serve``'s server on a free
port of 127.0.0.1, over a fresh SQLite database in ``.stepwork/shop-demo.db``, and talks to it over
HTTP as a client would:

1. ``POST /brands`` creates a brand: the ``create-brand`` workflow runs, the hook publishes its CMS
   page, and the ``brand.created`` subscriber handles the event once the run is done;
2. the CMS goes down and ``POST /brands`` fails halfway: the brand created by the first step is
   rolled back (``GET /brands`` does not list it), and no ``brand.created`` is published;
3. ``GET /brands/{id}`` (``use_query_graph_step``) and ``DELETE /brands/{id}``;
4. the admin API lists the stored executions with their states and steps, as the admin page shows
   them; in a terminal the server then stays up so the admin page can be opened, until Ctrl-C.

Every outcome is checked; the exit status is 0 only if all are what this file expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from examples.shop.app import make_app
from examples.shop.cms import Cms
from examples.shop.subscribers.brand_created import WELCOME_NOTES
from stepwork import App, InMemoryEventBus, Modules

DATABASE = Path(".stepwork") / "shop-demo.db"
problems: list[str] = []


def heading(title: str) -> None:
    print(f"\n{title}\n{'=' * len(title)}")


def expect(condition: bool, what: str) -> None:
    """Record (and print) an outcome the demo did not expect."""
    if not condition:
        problems.append(what)
        print(f"  !! UNEXPECTED: {what}")


def show(response: httpx.Response) -> Any:
    """Print ``METHOD path -> status body`` and return the JSON body."""
    body = response.json()
    print(f"  {response.request.method} {response.request.url.path} -> {response.status_code} {body}")
    return body


async def serve(app: App, key: str) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """The app on uvicorn, on a free port of 127.0.0.1, started."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(app.asgi(static_keys=[key]), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    return server, task, port


async def wait_for_events(app: App) -> None:
    bus = app.container.resolve(Modules.EVENT_BUS)
    assert isinstance(bus, InMemoryEventBus)
    await bus.wait_idle()


async def main() -> int:
    DATABASE.parent.mkdir(exist_ok=True)
    for path in DATABASE.parent.glob(DATABASE.name + "*"):
        path.unlink()
    url = f"sqlite:///{DATABASE}"
    app = make_app(url)
    cms: Cms = app.resolve("cms")
    notes: list[str] = app.resolve(WELCOME_NOTES)
    key = "sk_demo_" + secrets.token_hex(8)
    server, task, port = await serve(app, key)
    base = f"http://127.0.0.1:{port}"
    print(f"The shop runs on {base} (database {url}).")
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await scenario(client, app, cms, notes, key)
        if sys.stdin.isatty() and not problems:
            heading("4. The admin page")
            print(f"  Open {base}/app/settings/workflows and log in with the key {key}")
            print("  (the executions above, their steps, graphs and payloads). Ctrl-C stops the server.")
            print(f"  Later: STEPWORK_API_KEYS={key} STEPWORK_DATABASE_URL={url} stepwork serve "
                  "--app examples.shop.app")
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if problems:
        print(f"\n{len(problems)} unexpected outcome(s): " + "; ".join(problems))
        return 1
    print("\nEvery outcome was as expected.")
    return 0


async def scenario(client: httpx.AsyncClient, app: App, cms: Cms, notes: list[str], key: str) -> None:
    heading("1. Create a brand over HTTP")
    body = show(await client.post("/brands", json={"name": "Acme"}))
    acme = body.get("brand", {})
    expect(acme.get("name") == "Acme", "POST /brands did not answer the new brand")
    expect(acme.get("id") in cms.pages, "the brand_created hook did not publish the CMS page")
    await wait_for_events(app)
    print(f"  subscriber on brand.created: {notes}")
    expect(notes == [f"Welcome, Acme! (brand {acme.get('id')})"], "brand.created was not handled once")
    show(await client.post("/brands", json={"name": "Acme"}))

    heading("2. The CMS goes down: a creation fails halfway and is rolled back")
    cms.down = True
    body = show(await client.post("/brands", json={"name": "Globex"}))
    expect(body.get("type") == "unexpected_state", "the failed creation did not answer the CMS's error")
    cms.down = False
    listed = show(await client.get("/brands"))
    names = [b["name"] for b in listed.get("brands", [])]
    expect(names == ["Acme"], f"after the rollback the brands should be ['Acme'], got {names}")
    await wait_for_events(app)
    expect(len(notes) == 1, "a brand.created event of the rolled-back brand was published")
    print(f"  subscriber notes: {notes} (no event for Globex: dropped with the rollback)")

    heading("3. Read and delete through workflows")
    show(await client.get(f"/brands/{acme.get('id')}"))
    show(await client.post("/brands", json={"name": "Initech"}))
    initech = list(show(await client.get("/brands", params={"q": "init"})).get("brands", []))
    expect(len(initech) == 1, "GET /brands?q=init should find Initech")
    if initech:
        show(await client.delete(f"/brands/{initech[0]['id']}"))
        response = await client.get(f"/brands/{initech[0]['id']}")
        expect(response.status_code == 404, "a deleted brand should answer 404")
        show(response)

    heading("The stored executions (GET /admin/workflows-executions)")
    auth = {"Authorization": f"Bearer {key}"}
    listed = (await client.get("/admin/workflows-executions", headers=auth,
                               params={"order": "created_at", "limit": 20})).json()
    executions = listed.get("workflow_executions", [])
    for execution in executions:
        print(f"  {execution['workflow_id']:<14} {execution['transaction_id']}  {execution['state']}")
    states = sorted((e["workflow_id"], e["state"]) for e in executions)
    expect(("create-brand", "reverted") in states and ("create-brand", "done") in states,
           f"expected done and reverted create-brand executions, got {states}")
    reverted = next((e for e in reversed(executions) if e["state"] == "reverted"), None)  # the CMS one
    if reverted is not None:
        detail = (await client.get(f"/admin/workflows-executions/{reverted['id']}", headers=auth)).json()
        print(f"  the reverted one, {reverted['transaction_id']}, step by step:")
        for step_id, step in detail["workflow_execution"]["execution"]["steps"].items():
            if step_id != "_root":
                print(f"    {step['definition']['action']:<22} invoke {step['invoke']['state']:<10} "
                      f"compensate {step['compensate']['state']}")
    page = await client.get("/app/settings/workflows", follow_redirects=False)
    expect(page.status_code in (302, 303, 307), "the admin page should send a visitor without a session to log in")


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
