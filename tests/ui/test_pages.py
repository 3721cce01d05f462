"""The admin page in a real browser: log in, list, search, filter, page, read a failed execution, act on
executions, and watch them move live (no reload) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from typing import Any
from urllib.parse import urlencode

from playwright.sync_api import expect

from stepwork.engine.engine import WorkflowEngine
from tests.http.conftest import Served
from tests.ui.conftest import PAGED_FAILED, Browsing, execution_id, run
from tests.ui.workflows import XSS_NAME, xss

LIST = "/app/settings/workflows"


def mark(page: Any) -> None:
    """Leave a mark in the page's window: it survives live updates, not a reload."""
    page.evaluate("window.__notReloaded = true")


def not_reloaded(page: Any) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


def detail(browsing: Browsing, served: Served, workflow: str, tx: str) -> Any:
    """Log in straight onto the execution page of a transaction."""
    return browsing.login(f"{LIST}/{execution_id(served, workflow, tx)}")


def test_a_wrong_key_is_refused_and_the_right_one_opens_the_list(browsing: Browsing, backend: str) -> None:
    page = browsing.page
    page.goto(browsing.url(LIST))
    expect(page).to_have_url(re.compile(r"/app/login\?next=%2Fapp%2Fsettings%2Fworkflows$"))
    page.fill("#key", "sk_wrong" + "x" * 40)
    page.keyboard.press("Enter")
    expect(page.locator("#login-error")).to_contain_text("That API key is not valid")
    assert not [c for c in browsing.context.cookies() if c["name"] == "stepwork_session"]
    assert browsing.problems == ["console: Failed to load resource: the server responded with a status of 401 "
                                 "(Unauthorized)"]  # the refused login's answer
    browsing.problems.clear()
    browsing.shot("login-refused", backend, 1280)
    browsing.shot("login-refused", backend, 390)
    page.fill("#key", browsing.served.key)
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Workflows")
    (cookie,) = [c for c in browsing.context.cookies() if c["name"] == "stepwork_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    assert not browsing.problems


def test_the_list_pages_searches_and_filters(browsing: Browsing, paged: int, backend: str) -> None:
    page = browsing.login(f"{LIST}?workflow=ui-paged")
    rows = page.locator("table.executions tbody tr")
    expect(page.locator("#count-text")).to_have_text(f"Showing 1–20 of {paged}")
    expect(rows).to_have_count(20)
    expect(rows.first).to_contain_text("ui-page-044")  # newest first
    browsing.shot("list", backend, 1280)
    browsing.shot("list", backend, 390)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("link", name="Next →").click()
    expect(page.locator("#count-text")).to_have_text(f"Showing 21–40 of {paged}")
    page.get_by_role("link", name="Next →").click()
    expect(page.locator("#count-text")).to_have_text(f"Showing 41–{paged} of {paged}")
    expect(page.locator(".pager [aria-disabled=true]")).to_have_text("Next →")

    page.select_option("#state", "reverted")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#count-text")).to_have_text(f"Showing 1–{PAGED_FAILED} of {PAGED_FAILED}")
    expect(page.locator("tbody .badge")).to_have_text(["reverted"] * PAGED_FAILED)

    page.goto(browsing.url(LIST))
    page.fill("#q", "ui-page-007")
    page.keyboard.press("Enter")  # the search box submits with the keyboard
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ui-page-007")
    expect(page.locator("#q")).to_have_value("ui-page-007")

    page.fill("#q", "nothing-is-called-this")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="No executions match")).to_be_visible()
    browsing.shot("list-empty", backend, 1280)
    browsing.shot("list-empty", backend, 390)
    assert not browsing.problems


def test_a_failed_execution_shows_the_failing_steps_error(browsing: Browsing, paged: int, backend: str) -> None:
    page = browsing.login(f"{LIST}?workflow=ui-paged&state=reverted")
    page.locator("a.row-link").first.click()
    expect(page.locator(".summary-head .badge")).to_have_text("reverted")
    error = page.locator("#step-1-ui-page .error-box")
    expect(error).to_contain_text("ValueError")
    expect(error).to_contain_text("cannot page 40")
    expect(page.locator(".graph .node")).to_have_count(1)
    expect(page.locator(".graph .node .badge")).to_have_text(["failed", "reverted"])
    expect(page.locator("[data-act=cancel]")).to_have_count(0)  # a reverted execution cannot be cancelled
    browsing.shot("detail-failed", backend, 1280)
    browsing.shot("detail-failed", backend, 390)
    assert not browsing.problems


def test_completing_a_waiting_step_finishes_the_execution_live(browsing: Browsing, backend: str, tx: str) -> None:
    assert run(browsing.served, "http-approval", {"order": 7}, tx)["hasFinished"] is False
    page = detail(browsing, browsing.served, "http-approval", tx)
    expect(page.locator(".summary-head .badge")).to_have_text("invoking")
    expect(page.locator("#progress-text")).to_have_text("1 of 3 steps")
    expect(page.locator(".live").first).to_be_visible()  # subscribed
    mark(page)
    page.locator("[data-act=complete]").click()
    dialog = page.locator("#complete-dialog")
    expect(dialog).to_be_visible()
    page.fill("#complete-body", '{"approved": true')
    browsing.shot("detail-complete-dialog", backend, 1280, full_page=False)
    page.locator("#complete-go").click()
    expect(page.locator("#complete-error")).to_contain_text("not valid JSON")  # refused in the page
    page.fill("#complete-body", '{"approved": true}')
    browsing.shot("detail-complete-dialog", backend, 390, full_page=False)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("#complete-go").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".summary-head .badge")).to_have_text("done")
    expect(page.locator("#progress-text")).to_have_text("3 of 3 steps")
    expect(page.locator("#step-2-http-approve")).to_contain_text("done")
    assert not_reloaded(page)
    assert not browsing.problems


def test_a_step_completed_with_failure_reverts_the_execution(browsing: Browsing, tx: str) -> None:
    run(browsing.served, "http-approval", "y", tx)
    page = detail(browsing, browsing.served, "http-approval", tx)
    page.locator("[data-act=complete]").click()
    page.get_by_label("Failure: the step fails with the body as its error").check()
    page.fill("#complete-body", '{"message": "refused by <b>ops</b>"}')
    page.locator("#complete-go").click()
    expect(page.locator(".summary-head .badge")).to_have_text("reverted")
    expect(page.locator(".error-box").first).to_contain_text("refused by <b>ops</b>")
    assert not browsing.problems


def test_retrying_a_stuck_step_invokes_it_again(browsing: Browsing, tx: str) -> None:
    run(browsing.served, "http-approval", "z", tx)
    page = detail(browsing, browsing.served, "http-approval", tx)
    step = page.locator("#step-2-http-approve")
    expect(step.locator(".facts div").filter(has_text="Attempts").locator("dd")).to_have_text("1")
    step.locator("[data-act=retry]").click()
    expect(page.locator("#confirm-title")).to_have_text("Retry step http-approve?")
    page.locator("#confirm-go").click()
    expect(step.locator(".facts div").filter(has_text="Attempts").locator("dd")).to_have_text("2")
    expect(page.locator(".summary-head .badge")).to_have_text("invoking")  # waiting again
    expect(page.locator("#toast")).to_contain_text("invoked again")
    assert not browsing.problems


def test_cancelling_an_execution_compensates_it(browsing: Browsing, backend: str, tx: str) -> None:
    run(browsing.served, "http-approval", "c", tx)
    page = detail(browsing, browsing.served, "http-approval", tx)
    mark(page)
    page.locator("[data-act=cancel]").click()
    expect(page.locator("#confirm-dialog")).to_be_visible()
    browsing.shot("detail-cancel-dialog", backend, 1280, full_page=False)
    browsing.shot("detail-cancel-dialog", backend, 390, full_page=False)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.keyboard.press("Escape")  # the dialog closes with the keyboard, nothing done
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    expect(page.locator(".summary-head .badge")).to_have_text("invoking")
    page.locator("[data-act=cancel]").click()
    page.locator("#confirm-go").click()
    expect(page.locator(".summary-head .badge")).to_have_text("reverted")
    expect(page.locator(".graph .node").first.locator(".badge")).to_have_text(["done", "reverted"])
    assert not_reloaded(page)
    assert not browsing.problems


def _start(served: Served, workflow: str, payload: Any, tx: str) -> threading.Thread:
    thread = threading.Thread(target=run, args=(served, workflow, payload, tx), daemon=True)
    thread.start()
    return thread


def test_the_list_and_an_open_execution_move_live(browsing: Browsing, backend: str, tx: str) -> None:
    page = browsing.login(f"{LIST}?workflow=ui-steps")
    expect(page.get_by_role("heading", name="No executions match")).to_be_visible()
    expect(page.locator(".live")).to_be_visible()  # subscribed to ui-steps
    mark(page)
    first = _start(browsing.served, "ui-steps", 0.3, tx + "-list")
    row = page.locator("tbody tr").filter(has_text=tx + "-list")
    expect(row).to_be_visible()
    expect(row.locator(".progress-text")).to_have_text("4 of 4 steps")
    expect(row.locator(".badge")).to_have_text("done")
    first.join()

    second = _start(browsing.served, "ui-steps", 0.6, tx)
    deadline = time.monotonic() + 10
    while True:
        try:
            id_ = execution_id(browsing.served, "ui-steps", tx)
            break
        except AssertionError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    page.goto(browsing.url(f"{LIST}/{id_}"))
    mark(page)
    seen: list[int] = []
    bar = page.locator("#exec-progress")
    while time.monotonic() < deadline:
        value = int(bar.get_attribute("value") or 0)
        if not seen or seen[-1] != value:
            seen.append(value)
        if value == 4:
            break
        time.sleep(0.05)
    browsing.shot("detail-done", backend, 1280)
    second.join()
    assert seen == sorted(seen) and seen[-1] == 4 and len(seen) >= 3, seen  # it moved, step by step
    expect(page.locator(".summary-head .badge")).to_have_text("done")
    assert not_reloaded(page)
    assert not browsing.problems


async def _run_xss(served: Served, tx: str, payload: Any) -> None:
    # The name holds "/": no API route can address it, so a second engine on the database runs it.
    async with WorkflowEngine(served.database_url) as engine:
        await engine.run(xss, payload, transaction_id=tx)


def test_a_script_name_and_an_html_payload_are_shown_as_text(browsing: Browsing, backend: str, tx: str) -> None:
    html = '<img src=x onerror="alert(2)"><b>bold</b></pre><script>alert(3)</script>'
    # Playwright's sync API runs an event loop in this thread: the second engine runs in another.
    worker = threading.Thread(target=asyncio.run, args=(_run_xss(browsing.served, tx + "<i>x</i>", {"html": html}),))
    worker.start()
    worker.join(30)
    page = browsing.login(f"{LIST}?{urlencode({'workflow': XSS_NAME})}")
    link = page.locator("a.row-link").first
    expect(link).to_have_text(XSS_NAME)
    expect(page.locator("tbody td.mono").first).to_have_text(tx + "<i>x</i>")
    link.click()
    expect(page.locator("#exec-title")).to_contain_text(XSS_NAME)
    expect(page.locator("section[aria-labelledby=payload-title] pre")).to_contain_text(html.replace('"', '\\"'))
    assert page.locator("main img, main b, main i, main script").count() == 0
    browsing.shot("detail-escaped", backend, 1280)
    time.sleep(0.3)  # let anything that would run, run
    assert not browsing.problems, browsing.problems  # no alert(), no script error
