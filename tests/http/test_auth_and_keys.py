"""API keys: every /admin route refuses a request without a valid key in its Authorization header;
keys are stored hashed, revocable, and never written in clear to the database or the log."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import psycopg
import pytest

from stepwork.errors import StepworkError
from stepwork.http import ApiKeys
from tests.http.conftest import STATIC_KEY, Served, eventually

BASE = "/admin/workflows-executions"
ADMIN_ROUTES = [("GET", BASE), ("GET", f"{BASE}/wf_exec_x"), ("GET", f"{BASE}/wf/tx"), ("POST", f"{BASE}/wf/run"),
                ("POST", f"{BASE}/wf/steps/success"), ("POST", f"{BASE}/wf/steps/failure"),
                ("POST", f"{BASE}/wf/steps/retry"), ("POST", f"{BASE}/wf/tx/cancel"), ("GET", f"{BASE}/wf/subscribe"),
                ("GET", f"{BASE}/wf/tx/subscribe")]


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def _status(served: Served, headers: dict[str, str], url: str = BASE) -> int:
    async with served.client(key=None, headers=headers) as c:
        r = await c.get(url)
        if r.status_code == 401:
            assert r.json()["type"] == "unauthorized" and r.headers["www-authenticate"].startswith("Bearer")
        return r.status_code


@pytest.mark.parametrize(("method", "url"), ADMIN_ROUTES)
async def test_every_admin_route_needs_a_key(served: Served, method: str, url: str) -> None:
    async with served.client(key=None) as c:
        r = await c.request(method, url, json={})
    assert (r.status_code, r.json()["type"]) == (401, "unauthorized")


async def test_which_credentials_are_accepted(served: Served) -> None:
    assert await _status(served, {"Authorization": f"Bearer {served.key}"}) == 200
    assert await _status(served, {"Authorization": basic(served.key)}) == 200  # as @medusajs/js-sdk sends it
    assert await _status(served, {"Authorization": f"Bearer {STATIC_KEY}"}) == 200  # STEPWORK_API_KEYS
    assert await _status(served, {"Authorization": basic(served.key, "a-password")}) == 401
    assert await _status(served, {"Authorization": f"Bearer {served.key}x"}) == 401
    assert await _status(served, {"Authorization": "Bearer sk_wrong"}) == 401
    assert await _status(served, {"Authorization": "Bearer"}) == 401
    assert await _status(served, {"Authorization": f"Token {served.key}"}) == 401
    assert await _status(served, {"Authorization": "Basic !!notbase64"}) == 401
    assert await _status(served, {}) == 401


@pytest.mark.parametrize("name", ["api_key", "apiKey", "token", "access_token", "key"])
async def test_a_key_in_the_query_string_is_refused(served: Served, name: str) -> None:
    assert await _status(served, {}, f"{BASE}?{name}={served.key}") == 401


async def test_a_revoked_key_is_refused_once_the_cache_lets_go(served: Served) -> None:
    """The server caches a verified key for cache_ttl (0.3 s here): revoked elsewhere, it stops working
    within that time."""
    other = ApiKeys(served.database_url)
    try:
        info, secret = await other.create("to revoke")
        headers = {"Authorization": f"Bearer {secret}"}
        assert await _status(served, headers) == 200
        revoked = await other.revoke(info.id)
        assert revoked.revoked_at is not None and revoked.revoked

        async def refused() -> bool:
            return await _status(served, headers) == 401
        await eventually(refused, timeout=5)
        never_used_info, never_used = await other.create("revoked before use")
        await other.revoke(never_used_info.id)
        assert await _status(served, {"Authorization": f"Bearer {never_used}"}) == 401
    finally:
        await other.close()


async def test_keys_are_created_listed_revoked_and_verified(served: Served) -> None:
    keys = ApiKeys(served.database_url, cache_ttl=60)
    try:
        info, secret = await keys.create("ci")
        assert secret.startswith("sk_") and len(secret) >= 40 and info.prefix == secret[:10]
        assert (await keys.verify(secret)) is not None
        assert (await keys.verify(secret))  # cached now
        listed = {k.id: k for k in await keys.list()}
        assert listed[info.id].name == "ci" and listed[info.id].last_used_at is not None
        assert served.key_id in listed
        await keys.revoke(info.id)
        assert await keys.verify(secret) is None  # at once through the same ApiKeys, cache or not
        assert (await keys.revoke(info.id)).revoked  # again: no change, no error
        with pytest.raises(StepworkError) as exc:
            await keys.revoke("apk_nope")
        assert exc.value.type == "not_found" and "apk_nope" in exc.value.message
        assert await keys.verify("sk_" + "a" * 43) is None
        assert await keys.verify("") is None
    finally:
        await keys.close()


async def test_a_key_is_in_clear_neither_in_the_database_nor_in_the_log(served: Served) -> None:
    keys = ApiKeys(served.database_url)
    try:
        _info, secret = await keys.create("watched")
    finally:
        await keys.close()
    async with served.client(key=secret) as c:
        assert (await c.get(BASE)).status_code == 200
    async with served.client(key=None) as c:
        assert (await c.get(BASE, headers={"Authorization": basic(secret)})).status_code == 200
    # With a valid key, so that what is tested is the log's redaction (not the 401).
    async with served.client() as c:
        assert (await c.get(f"{BASE}?api_key={secret}")).status_code == 400  # not a parameter of the route
        assert (await c.get(f"{BASE}?q={secret}")).status_code == 200
        assert (await c.get(f"{BASE}?transaction_id={secret}&q={STATIC_KEY}")).status_code == 200
        assert (await c.get(f"{BASE}/{secret}")).status_code == 404
        assert (await c.get(f"{BASE}/{STATIC_KEY}")).status_code == 404
    secret_hash = __import__("hashlib").sha256(secret.encode()).hexdigest()
    if served.sqlite_path is not None:
        raw = b"".join(p.read_bytes() for p in served.sqlite_path.parent.glob(served.sqlite_path.name + "*"))
        assert secret.encode() not in raw and secret[10:].encode() not in raw
        assert secret_hash.encode() in raw  # (the check reads the right database)
    else:
        with psycopg.connect(served.database_url) as conn:
            dump = str(conn.execute("SELECT * FROM stepwork_api_key").fetchall())
        assert secret not in dump and secret[10:] not in dump and secret_hash in dump
    server_lines = served.log.server_lines()
    logged = [line for line in server_lines if "uvicorn.access" in line and "[redacted]" in line.replace("%5B", "[")
              .replace("%5D", "]")]
    assert len(logged) >= 5, server_lines[-10:]  # the requests were logged, redacted
    assert not [line for line in server_lines if secret[10:] in line or STATIC_KEY in line]


async def test_a_filter_value_that_contains_a_key_like_text_filters(client: httpx.AsyncClient) -> None:
    """The app sees the query as sent: only the log is redacted."""
    for tx in ("task_0123456789abcdefghijk-sk_0123456789abcdefghijk", "sk_" + "a" * 43):
        r = await client.post(f"{BASE}/http-hello/run", json={"input": {"name": "x"}, "transaction_id": tx})
        assert r.status_code == 200, r.text
        listed = (await client.get(BASE, params={"transaction_id": tx})).json()
        assert [e["transaction_id"] for e in listed["workflow_executions"]] == [tx]


def test_what_the_access_log_redacts() -> None:
    from stepwork.http.middleware import redact_url

    key = "sk_" + "B" * 43
    assert redact_url(f"/a/{key}/b?token=x&q={key}&transaction_id=task_{key}") == \
        f"/a/[redacted]/b?token=%5Bredacted%5D&q=%5Bredacted%5D&transaction_id=task_{key}"
    assert redact_url("/a?transaction_id=sk_0123456789abcdefghijk&order=-created_at") == \
        "/a?transaction_id=sk_0123456789abcdefghijk&order=-created_at"


@pytest.mark.parametrize(("url", "path"), [(None, ".stepwork/stepwork.db"), ("sqlite:///keys.db", "keys.db"),
                                            ("sqlite:///keys.db?busy_timeout=2", "keys.db")])
def test_keys_and_executions_share_the_engines_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        url: str | None, path: str) -> None:
    import asyncio
    import sqlite3

    from stepwork.engine.engine import WorkflowEngine

    monkeypatch.chdir(tmp_path)

    async def make() -> None:
        keys = ApiKeys(url)
        try:
            await keys.create("default")
        finally:
            await keys.close()
        async with WorkflowEngine(url) as engine:  # the engine opens the same file
            assert await engine.list_workflow_executions() == []
    asyncio.run(make())
    with sqlite3.connect(tmp_path / path) as conn:
        assert conn.execute("SELECT name FROM stepwork_api_key").fetchall() == [("default",)]
    assert sorted(p.name for p in tmp_path.rglob("*.db")) == [Path(path).name]


def test_a_sqlite_url_the_engine_refuses_is_refused_at_once() -> None:
    with pytest.raises(StepworkError) as exc:
        ApiKeys("sqlite:///keys.db?timeout=2")
    assert exc.value.type == "invalid_data" and "busy_timeout" in exc.value.message


async def test_unknown_keys_are_remembered_and_last_used_is_written_once_a_minute(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from stepwork.http.keys import NEGATIVE_CACHE_SIZE

    keys = ApiKeys(f"sqlite:///{tmp_path / 'keys.db'}", cache_ttl=0.0 + 1e-9)
    statements: list[str] = []
    try:
        _info, secret = await keys.create("busy")
        engine = keys._engine
        assert engine is not None
        sa.event.listen(engine, "before_cursor_execute",
                        lambda conn, cursor, statement, *rest: statements.append(statement.split()[0]))
        unknown = "sk_" + "u" * 43
        assert await keys.verify(unknown) is None
        assert statements == ["SELECT"]
        keys.cache_ttl = 60.0
        assert await keys.verify(unknown + "x") is None  # read once ...
        assert await keys.verify(unknown + "x") is None  # ... then remembered
        assert statements == ["SELECT", "SELECT"]
        for n in range(NEGATIVE_CACHE_SIZE + 5):
            await keys.verify(f"sk_{n}")
        assert len(keys._unknown) == NEGATIVE_CACHE_SIZE  # bounded
        keys.cache_ttl = 1e-9
        statements.clear()
        first = await keys.verify(secret)
        second = await keys.verify(secret)
        assert first is not None and second is not None and first.last_used_at is not None
        assert statements == ["SELECT", "UPDATE", "SELECT"]  # the second use within a minute writes nothing
    finally:
        await keys.close()


async def test_an_in_memory_database_keeps_keys_for_the_process() -> None:
    keys = ApiKeys("sqlite://")
    try:
        info, secret = await keys.create("memory")
        assert [k.id for k in await keys.list()] == [info.id]
        verified = await keys.verify(secret)
        assert verified is not None and verified.id == info.id and verified.last_used_at is not None
        assert (await keys.list())[0].last_used_at == verified.last_used_at
    finally:
        await keys.close()


async def test_an_unsupported_url_is_refused() -> None:
    with pytest.raises(StepworkError) as exc:
        ApiKeys("mysql://x")
    assert exc.value.type == "invalid_data"


async def test_basic_credentials_in_httpx_auth_form_work(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.base_url, auth=(served.key, "")) as c:
        assert (await c.get(BASE)).status_code == 200
