"""The admin page checked for accessibility by axe-core (Deque's checker, pinned in ``tests/ui/axe``) and
used with the keyboard alone.

axe-core runs inside the page (injected by Playwright) with the WCAG 2.0, 2.1 and 2.2 A and AA rules,
``color-contrast`` among them, on each page and state an operator sees, at 1280 and 390 pixels wide.
The page's markup does not depend on the backend: these run on SQLite only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.http.conftest import Served
from tests.ui.conftest import Browsing, execution_id, run

LIST = "/app/settings/workflows"
AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (1280, 390)
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

pytestmark = pytest.mark.parametrize("ui_served", ["sqlite"], indirect=True)


@pytest.fixture
def checking(browser: Any, ui_served: Served) -> Iterator[Browsing]:
    """A fresh context that lets Playwright add axe-core's script: the pages' Content-Security-Policy
    allows no inline script (tests/ui/test_security.py checks that policy)."""
    if not AXE.exists():
        pytest.fail("axe-core is not installed: `make tests/ui/axe/node_modules/.installed` "
                    "(or `cd tests/ui/axe && npm ci`).")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    try:
        yield Browsing(context, ui_served)
    finally:
        context.close()


def violations(page: Any) -> list[str]:
    """What axe-core finds against the WCAG A/AA rules on the page as it is now, one line per element."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}, "
                           "resultTypes: ['violations']})", WCAG_AA)
    return [f"{v['id']} ({v['impact']}): {v['help']} at {n['target']}: {n['failureSummary']}"
            for v in result["violations"] for n in v["nodes"]]


def check_both_widths(page: Any, what: str) -> None:
    """No violation at 1280 or at 390 pixels wide (the narrow layout is another layout: cards, not a table)."""
    found = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        found += [f"{what} at {width} px: {v}" for v in violations(page)]
    page.set_viewport_size({"width": 1280, "height": 900})
    assert not found, "\n".join(found)


def test_the_login_page_passes_axe(checking: Browsing) -> None:
    page = checking.page
    page.goto(checking.url(LIST))
    expect(page.locator("#key")).to_be_focused()
    check_both_widths(page, "login")
    page.fill("#key", "sk_wrong")
    page.keyboard.press("Enter")
    expect(page.locator("#login-error")).to_be_visible()
    check_both_widths(page, "refused login")


def test_the_list_passes_axe_with_data_and_empty(checking: Browsing, paged: int) -> None:
    page = checking.login(f"{LIST}?workflow=ui-paged")
    expect(page.locator("table.executions tbody tr")).to_have_count(20)
    check_both_widths(page, "list")
    page.goto(checking.url(f"{LIST}?state=failed&q=nothing-is-called-this"))
    expect(page.get_by_role("heading", name="No executions match")).to_be_visible()
    check_both_widths(page, "empty list")
    page.goto(checking.url(f"{LIST}?workflow=ui-paged&page=99"))
    expect(page.get_by_role("heading", name="This page is past the end")).to_be_visible()
    check_both_widths(page, "page past the end")


def test_a_failed_execution_passes_axe(checking: Browsing, paged: int) -> None:
    page = checking.login(f"{LIST}?workflow=ui-paged&state=reverted")
    page.locator("a.row-link").first.click()
    expect(page.locator(".error-box").first).to_contain_text("ValueError")
    page.locator(".error-box summary").first.click()  # the stack, open
    page.locator("details[data-key=raw] > summary").click()  # the raw JSON, open
    check_both_widths(page, "failed execution")


def test_the_open_dialogs_pass_axe(checking: Browsing, tx: str) -> None:
    run(checking.served, "http-approval", {"order": 1}, tx)
    page = checking.login(f"{LIST}/{execution_id(checking.served, 'http-approval', tx)}")
    page.locator("[data-act=cancel]").click()
    expect(page.locator("#confirm-dialog")).to_be_visible()
    check_both_widths(page, "confirm dialog")
    page.keyboard.press("Escape")
    page.locator("[data-act=complete]").click()
    page.fill("#complete-body", "{nope")
    page.locator("#complete-go").click()
    expect(page.locator("#complete-error")).to_be_visible()
    check_both_widths(page, "complete dialog with its error")
    page.keyboard.press("Escape")
    check_both_widths(page, "waiting execution")


# -- the keyboard alone ------------------------------------------------------------------------------


def focus_ring(page: Any) -> str:
    """The focused element's outline (``"solid 3px"``), or ``""`` when it shows no focus."""
    return str(page.evaluate("""() => {
        const s = getComputedStyle(document.activeElement);
        const shown = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
        return shown ? `${s.outlineStyle} ${s.outlineWidth}` : '';
    }"""))


def tab_to(page: Any, selector: str, most: int = 40) -> None:
    """Press Tab until ``selector`` has the focus, and check that the focus shows."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            assert focus_ring(page), f"{selector} has the focus but shows no focus ring"
            return
    raise AssertionError(f"{most} presses of Tab did not reach {selector}")


def test_the_page_works_with_the_keyboard_alone(browsing: Browsing, tx: str) -> None:
    run(browsing.served, "http-approval", {"order": 2}, tx)
    page = browsing.page
    page.goto(browsing.url(LIST))
    expect(page.locator("#key")).to_be_focused()  # the login form takes the key at once
    page.keyboard.type(browsing.served.key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()

    page.keyboard.press("Tab")  # first stop: the skip link, shown when focused
    expect(page.locator("a.skip")).to_be_focused()
    assert page.locator("a.skip").bounding_box()["x"] >= 0
    tab_to(page, "#q")
    page.keyboard.type(tx)
    tab_to(page, "#state")
    while page.locator("#state").input_value() != "invoking":
        page.keyboard.press("ArrowDown")  # a closed select changes its value with the arrows
    tab_to(page, "button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("#q")).to_have_value(tx)
    expect(page.locator("#state")).to_have_value("invoking")
    expect(page.locator("tbody tr")).to_have_count(1)

    tab_to(page, "a.row-link")
    page.keyboard.press("Enter")
    expect(page.locator(".summary-head .badge")).to_have_text("invoking")
    tab_to(page, "[data-act=cancel]")
    page.keyboard.press("Enter")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    assert page.evaluate("document.activeElement.closest('dialog')?.id") == "confirm-dialog"
    assert focus_ring(page)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("[data-act=cancel]")).to_be_focused()  # back where it was

    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    expect(page.get_by_role("button", name="Keep as is")).to_be_focused()  # the harmless choice comes first
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator(".summary-head .badge")).to_have_text("invoking")  # nothing was done

    tab_to(page, "[data-act=complete]")
    page.keyboard.press("Enter")
    expect(page.locator("#complete-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#complete-dialog")).to_be_hidden()
    assert not browsing.problems


def test_the_checker_finds_what_it_is_meant_to_find(checking: Browsing) -> None:
    # The check above would pass on a page it could not read: here it must flag pale text and a field
    # without a label.
    page = checking.page
    page.goto(checking.url("/app/login"))
    page.evaluate("""() => {
        const p = document.createElement('p'); p.textContent = 'pale'; p.style.color = '#c8c8c8';
        const input = document.createElement('input');
        document.querySelector('main').append(p, input);
    }""")
    found = violations(page)
    assert any(v.startswith("color-contrast ") for v in found), found
    assert any(v.startswith("label ") for v in found), found
