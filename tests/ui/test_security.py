"""The admin page's security, over plain HTTP: nothing with data without a session, the cookie's flags,
CSRF tokens on every state-changing request, logout, revoked keys, and the headers of /app."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import httpx
import pytest

from stepwork.http import ApiKeys
from tests.http.conftest import Served
from tests.ui.conftest import BASE, execution_id, run

LIST = "/app/settings/workflows"


def browser_like(served: Served) -> httpx.Client:
    """A client without an API key, keeping cookies as a browser does."""
    return httpx.Client(base_url=served.base_url, timeout=30.0, follow_redirects=False)


def log_in(client: httpx.Client, key: str, **headers: str) -> httpx.Response:
    return client.post("/app/login", data={"key": key, "next": LIST}, headers=headers)


def csrf_of(client: httpx.Client) -> str:
    page = client.get(LIST)
    assert page.status_code == 200
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert match is not None
    return match.group(1)


def test_nothing_with_data_is_served_without_a_session(ui_served: Served, tx: str) -> None:
    run(ui_served, "http-hello", {"name": "Secret"}, tx)
    id_ = execution_id(ui_served, "http-hello", tx)
    with browser_like(ui_served) as client:
        for path in (LIST, f"{LIST}?q=Secret", f"{LIST}/{id_}"):
            r = client.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/app/login"), path
            assert "Secret" not in r.text and tx not in r.text
        for path in (f"{LIST}/_rows", f"{LIST}/{id_}/_body", BASE, f"{BASE}/{id_}", f"{BASE}/http-hello/subscribe"):
            r = client.get(path)
            assert r.status_code == 401, path
            assert "Secret" not in r.text and tx not in r.text
        assert client.get("/app").headers["location"] == LIST  # which then asks for the login
        client.cookies.set("stepwork_session", "forged-" + "x" * 40)  # an unknown session is no session
        assert client.get(f"{LIST}/_rows").status_code == 401
        assert client.get(BASE).status_code == 401
        login = client.get("/app/login")
        assert login.status_code == 200 and tx not in login.text and "csrf-token" not in login.text
        for asset in ("/app/static/app.css", "/app/static/app.js", "/app/static/favicon.svg"):
            assert client.get(asset).status_code == 200  # public: they hold no data


def test_the_session_cookie_is_httponly_strict_and_secure_behind_https(ui_served: Served) -> None:
    with browser_like(ui_served) as client:
        r = log_in(client, ui_served.key)
        assert r.status_code == 303 and r.headers["location"] == LIST
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("stepwork_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Secure" not in cookie and "Max-Age" not in cookie and "Path=/" in cookie
        assert ui_served.key not in cookie
    with browser_like(ui_served) as client:
        # uvicorn trusts X-Forwarded-Proto from loopback, as from a TLS-terminating proxy in front of it.
        r = log_in(client, ui_served.key, **{"x-forwarded-proto": "https"})
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


def test_a_wrong_key_is_refused_with_a_readable_message(ui_served: Served) -> None:
    with browser_like(ui_served) as client:
        for key in ("sk_not_a_real_key_" + "x" * 30, "static-but-wrong", ""):
            r = log_in(client, key)
            assert r.status_code == 401 and "set-cookie" not in r.headers
            assert ("That API key is not valid" if key else "Enter an API key") in r.text
        r = log_in(client, ui_served.key, origin="https://evil.example")
        assert r.status_code == 403 and "set-cookie" not in r.headers


def test_state_changing_requests_need_the_csrf_token(ui_served: Served, tx: str) -> None:
    run(ui_served, "http-approval", "csrf", tx)
    with browser_like(ui_served) as client:
        log_in(client, ui_served.key)
        token = csrf_of(client)
        assert client.get(f"{BASE}/http-approval/{tx}").status_code == 200  # reading needs no token
        cancel = f"{BASE}/http-approval/{tx}/cancel"
        body = {"transaction_id": tx, "step_id": "http-approve"}
        for headers in ({}, {"x-csrf-token": "wrong"}, {"x-csrf-token": ""}):
            for path, json in ((cancel, None), (f"{BASE}/http-approval/steps/success", body),
                               (f"{BASE}/http-approval/steps/retry", body), (f"{BASE}/http-hello/run", {})):
                r = client.post(path, json=json, headers=headers)
                assert r.status_code == 401 and "CSRF" in r.json()["message"], (path, headers)
        assert client.get(f"{BASE}/http-approval/{tx}").json()["workflow_execution"]["state"] == "invoking"
        r = client.post(cancel, headers={"x-csrf-token": token})
        assert r.status_code == 200 and r.json()["workflow_execution"]["state"] == "reverted"
        assert client.post("/app/logout", data={"csrf": "wrong"}).status_code == 401  # logout needs it too


def test_logout_ends_the_session(ui_served: Served) -> None:
    with browser_like(ui_served) as client:
        log_in(client, ui_served.key)
        session = client.cookies["stepwork_session"]
        token = csrf_of(client)
        r = client.post("/app/logout", data={"csrf": token})
        assert r.status_code == 303 and r.headers["location"] == "/app/login?ended=1"
        assert 'stepwork_session=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    with browser_like(ui_served) as client:
        client.cookies.set("stepwork_session", session)  # the old cookie, kept by someone
        assert client.get(LIST).status_code == 303
        assert client.get(BASE).status_code == 401


def _revoke(served: Served, key_id: str) -> None:
    async def revoke() -> None:
        keys = ApiKeys(served.database_url)
        await keys.revoke(key_id)
        await keys.close()
    thread = threading.Thread(target=asyncio.run, args=(revoke(),))
    thread.start()
    thread.join(30)


def test_a_revoked_key_ends_its_sessions(ui_served: Served) -> None:
    async def create() -> tuple[str, str]:
        keys = ApiKeys(ui_served.database_url)
        info, secret = await keys.create("ui-revoked")
        await keys.close()
        return info.id, secret
    key_id, secret = asyncio.run(create())
    with browser_like(ui_served) as client:
        assert log_in(client, secret).status_code == 303
        assert client.get(LIST).status_code == 200
        _revoke(ui_served, key_id)
        deadline = time.monotonic() + 5  # the server re-reads a key after its 0.3 s cache
        while client.get(LIST).status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert client.get(BASE).status_code == 401


@pytest.mark.parametrize("path", ["/app/login", LIST, "/app/static/app.js"])
def test_app_answers_carry_a_strict_content_security_policy(ui_served: Served, path: str) -> None:
    with browser_like(ui_served) as client:
        if path != "/app/login":
            log_in(client, ui_served.key)
        r = client.get(path)
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        if not path.startswith("/app/static"):
            assert r.headers["cache-control"] == "no-store"
            # no inline script, event handler or style attribute the policy would have to allow
            assert not re.search(r"<script(?![^>]*\bsrc=)", r.text)
            assert not re.search(r"\son[a-z]+=", r.text) and " style=" not in r.text


def test_the_login_only_sends_the_browser_on_within_the_app(ui_served: Served) -> None:
    with browser_like(ui_served) as client:
        for target in ("https://evil.example/", "//evil.example/app/", "/admin/workflows-executions", "javascript:x"):
            r = client.post("/app/login", data={"key": ui_served.key, "next": target})
            assert r.status_code == 303 and r.headers["location"] == LIST, target
