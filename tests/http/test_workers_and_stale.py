"""Worker health (``GET /admin/workers``) and the list route's ``stale`` filter (beyond Medusa)."""

from __future__ import annotations

import httpx

from tests.http.test_routes import BASE


async def test_the_servers_engine_is_listed_as_a_live_worker(client: httpx.AsyncClient) -> None:
    r = await client.get("/admin/workers")
    assert r.status_code == 200, r.text
    alive = [w for w in r.json()["workers"] if w["status"] == "alive"]
    assert alive, r.json()
    me = alive[0]
    assert set(me) == {"id", "host", "pid", "status", "concurrency", "lease_ttl", "started_at", "last_heartbeat_at",
                       "seconds_since_heartbeat", "stopped_at", "executions_owned", "workflows"}
    assert {"workflow_id": "http-hello", "version": "1"} in me["workflows"]
    assert me["last_heartbeat_at"].endswith("Z") and me["stopped_at"] is None


async def test_workers_needs_the_key_and_takes_no_query(client: httpx.AsyncClient, served: object) -> None:
    assert (await client.get("/admin/workers", params={"x": "1"})).json()["type"] == "invalid_data"
    async with httpx.AsyncClient(base_url=str(client.base_url)) as anonymous:
        assert (await anonymous.get("/admin/workers")).status_code == 401


async def test_the_stale_filter(client: httpx.AsyncClient) -> None:
    # Every workflow the server's executions ran is defined in its process: none is stale.
    stale = await client.get(BASE, params={"stale": "true"})
    assert stale.status_code == 200, stale.text
    assert stale.json()["count"] == 0
    every = (await client.get(BASE)).json()["count"]
    assert (await client.get(BASE, params={"stale": "false"})).json()["count"] == every
    bad = await client.get(BASE, params={"stale": "maybe"})
    assert (bad.status_code, bad.json()["type"]) == (400, "invalid_data")


async def test_the_run_route_starts_a_named_version(client: httpx.AsyncClient, tx: str) -> None:
    ok = await client.post(f"{BASE}/http-hello/run", json={"input": {"name": "V"}, "transaction_id": tx,
                                                           "version": "1"})
    assert ok.status_code == 200 and ok.json()["acknowledgement"]["hasFinished"] is True, ok.text
    missing = await client.post(f"{BASE}/http-hello/run", json={"input": {"name": "V"}, "version": "9"})
    assert (missing.status_code, missing.json()["type"]) == (404, "not_found")
    assert 'no version "9"' in missing.json()["message"]
