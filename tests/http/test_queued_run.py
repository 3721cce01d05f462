"""The run route with ``"queue": true`` (beyond Medusa): the run is stored for a worker (here the
server's own engine claims it) and the acknowledgement comes at once, unfinished."""

from __future__ import annotations

import httpx

from tests.http.test_routes import BASE, latest, state_becomes


async def test_a_queued_run_is_acknowledged_at_once_and_runs(client: httpx.AsyncClient, tx: str) -> None:
    r = await client.post(f"{BASE}/http-hello/run", json={"input": {"name": "Q"}, "transaction_id": tx,
                                                          "queue": True, "priority": 3})
    assert r.status_code == 200, r.text
    assert r.json() == {"acknowledgement": {"workflowId": "http-hello", "transactionId": tx,
                                            "hasFinished": False, "hasFailed": False}}
    record = await state_becomes(client, "http-hello", tx, "done")
    assert record["context"]["data"]["invoke"]["http-greet"] == {"greeting": "hello Q"}
    again = await client.post(f"{BASE}/http-hello/run",
                              json={"input": {"name": "R"}, "transaction_id": tx, "queue": True})
    assert again.json()["acknowledgement"]["hasFinished"] is False  # a finished id: a new run is queued
    await state_becomes(client, "http-hello", tx, "done")
    assert (await latest(client, "http-hello", tx))["id"] != record["id"]


async def test_a_priority_without_queue_is_refused(client: httpx.AsyncClient, tx: str) -> None:
    r = await client.post(f"{BASE}/http-hello/run", json={"transaction_id": tx, "priority": 3})
    assert (r.status_code, r.json()["type"]) == (400, "invalid_data")
    bad = await client.post(f"{BASE}/http-hello/run", json={"queue": True, "priority": "high"})
    assert bad.status_code == 400
