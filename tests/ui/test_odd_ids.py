"""Ids holding what a URL treats specially ("/", "?", "#", "%", spaces, unicode) open their page, and the
actions work wherever the API's paths can name the ids."""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from urllib.parse import quote, urlencode

from playwright.sync_api import expect

from stepwork.engine.engine import WorkflowEngine
from tests.http.conftest import Served
from tests.ui.conftest import BASE, Browsing, api
from tests.ui.workflows import ODD_NAME, SLASH_NAME, slash

LIST = "/app/settings/workflows"


def run_odd(served: Served, transaction_id: str) -> None:
    with api(served) as client:
        r = client.post(f"{BASE}/{quote(ODD_NAME, safe='')}/run",
                        json={"input": {"n": 1}, "transaction_id": transaction_id})
        assert r.status_code == 200, r.text
        assert r.json()["acknowledgement"]["hasFinished"] is False  # its first step waits


def open_row(browsing: Browsing, workflow: str, transaction_id: str) -> Any:
    """Log in onto the list of ``workflow``, follow the link of ``transaction_id``'s row."""
    page = browsing.login(f"{LIST}?{urlencode({'workflow': workflow})}")
    page.locator("tbody tr").filter(has_text=transaction_id).locator("a.row-link").click()
    expect(page.locator("#exec-title")).to_contain_text(workflow)
    expect(page.locator(".summary-card .facts dd.mono").nth(1)).to_have_text(transaction_id)
    return page


def test_odd_ids_open_their_page_and_their_actions_work(browsing: Browsing, backend: str, tx: str) -> None:
    cancelled, completed = f"{tx} ?#%&ü-1", f"{tx} ?#%&ü-2"
    run_odd(browsing.served, cancelled)
    run_odd(browsing.served, completed)
    page = open_row(browsing, ODD_NAME, cancelled)
    expect(page.locator(".live").first).to_be_visible()  # its transaction's SSE route was named
    page.locator("[data-act=cancel]").click()
    expect(page.locator("#confirm-text code")).to_have_text(cancelled)
    page.locator("#confirm-go").click()
    expect(page.locator(".summary-head .badge")).to_have_text("reverted")

    page.goto(browsing.url(f"{LIST}?{urlencode({'workflow': ODD_NAME, 'q': completed})}"))
    page.locator("a.row-link").click()
    page.locator("[data-act=complete]").click()
    page.fill("#complete-body", '{"ok": "ü"}')
    page.locator("#complete-go").click()
    expect(page.locator(".summary-head .badge")).to_have_text("done")
    expect(page.locator("#step-2-ui-after")).to_contain_text("done")
    browsing.shot("detail-odd-ids", backend, 1280)
    assert not browsing.problems, browsing.problems


async def _run_slash(served: Served, transaction_id: str) -> None:
    async with WorkflowEngine(served.database_url) as engine:
        await engine.run(slash, {"n": 2}, transaction_id=transaction_id)


def test_an_id_with_a_slash_opens_its_page_without_actions_the_api_cannot_route(
        browsing: Browsing, backend: str, tx: str) -> None:
    transaction_id = f"{tx}/a b?#ü"
    # No API route can name "ui/slash": a second engine on the database runs it (in another thread:
    # Playwright's sync API keeps an event loop in this one).
    worker = threading.Thread(target=asyncio.run, args=(_run_slash(browsing.served, transaction_id),))
    worker.start()
    worker.join(30)
    page = open_row(browsing, SLASH_NAME, transaction_id)
    expect(page.locator(".summary-head .badge")).to_have_text("invoking")
    expect(page.locator("#no-actions")).to_contain_text("holds “/”")
    expect(page.locator("[data-act]")).to_have_count(0)  # no button that could only fail
    browsing.shot("detail-slash-id", backend, 1280)
    browsing.shot("detail-slash-id", backend, 390)
    assert not browsing.problems, browsing.problems

    # The page's own routes take an id holding "/" ("%2F" in the address), its page and its fragment.
    page.goto(browsing.url(f"{LIST}/{quote('no/such?id #ü', safe='')}"))
    expect(page.get_by_role("heading", name="No such execution")).to_be_visible()
    expect(page.locator("main code")).to_have_text("no/such?id #ü")
    browsing.shot("missing", backend, 390)
    answer = page.request.get(browsing.url(f"{LIST}/{quote('no/such', safe='')}/_body"))
    assert answer.status == 404 and answer.json()["message"] == 'No execution "no/such".'
    browsing.problems.clear()  # the 404 page's own load is logged by the browser as a failed resource
