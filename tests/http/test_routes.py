"""Every admin route through a real server, on SQLite and PostgreSQL, with Medusa's bodies."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from tests.http import workflows
from tests.http.conftest import eventually

BASE = "/admin/workflows-executions"


async def latest(client: httpx.AsyncClient, wf: str, tx: str) -> dict[str, Any]:
    r = await client.get(f"{BASE}/{wf}/{tx}")
    assert r.status_code == 200, r.text
    return r.json()["workflow_execution"]  # type: ignore[no-any-return]


async def state_becomes(client: httpx.AsyncClient, wf: str, tx: str, state: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        record = await latest(client, wf, tx)
        return record if record["state"] == state else None
    return await eventually(check)  # type: ignore[no-any-return]


async def test_health_needs_no_key(served: Any) -> None:
    async with served.client(key=None) as anonymous:
        r = await anonymous.get("/health")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


async def test_run_answers_the_acknowledgement_and_the_execution_reads_back(client: httpx.AsyncClient,
                                                                            tx: str) -> None:
    r = await client.post(f"{BASE}/http-hello/run", json={"input": {"name": "Ada"}, "transaction_id": tx})
    assert r.status_code == 200, r.text
    # Medusa's wire shape, camelCase (the Python API's WorkflowResult.acknowledgement stays snake_case).
    assert r.json() == {"acknowledgement": {"workflowId": "http-hello", "transactionId": tx,
                                            "hasFinished": True, "hasFailed": False}}
    record = await latest(client, "http-hello", tx)
    # Medusa's detail defaults: the records, no run_id or retention_time.
    assert set(record) == {"id", "workflow_id", "transaction_id", "context", "execution", "state", "created_at",
                           "updated_at", "deleted_at"}
    assert record["state"] == "done"
    assert record["context"]["data"]["invoke"]["http-greet"] == {"greeting": "hello Ada"}
    assert record["execution"]["transactionId"] == tx
    by_id = await client.get(f"{BASE}/{record['id']}")
    assert by_id.status_code == 200
    assert by_id.json() == {"workflow_execution": record}
    picked = await client.get(f"{BASE}/{record['id']}", params={"fields": "state,run_id"})
    assert set(picked.json()["workflow_execution"]) == {"id", "state", "run_id"}


async def test_run_without_a_transaction_id_gets_one(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{BASE}/http-hello/run", json={"input": {"name": "Bo"}})
    ack = r.json()["acknowledgement"]
    assert ack["transactionId"].startswith("auto-") and ack["hasFinished"] is True
    assert (await latest(client, "http-hello", ack["transactionId"]))["state"] == "done"


async def test_a_failing_run_is_acknowledged_as_failed_not_as_an_http_error(client: httpx.AsyncClient,
                                                                            tx: str) -> None:
    r = await client.post(f"{BASE}/http-hello/run", json={"input": {"name": "X", "fail": True},
                                                           "transaction_id": tx})
    assert r.status_code == 200
    assert r.json()["acknowledgement"]["hasFailed"] is True
    record = await latest(client, "http-hello", tx)
    assert record["state"] in ("failed", "reverted")
    assert "cannot greet X" in str(record["context"]["errors"])


async def test_list_filters_pages_orders_and_selects_fields(client: httpx.AsyncClient, tx: str) -> None:
    txs = [f"{tx}-{i}" for i in range(3)]
    for t in txs:
        assert (await client.post(f"{BASE}/http-hello/run", json={"input": {"name": t}, "transaction_id": t})
                ).status_code == 200
    await client.post(f"{BASE}/http-hello/run", json={"input": {"name": "f", "fail": True},
                                                      "transaction_id": f"{tx}-failed"})

    r = await client.get(BASE, params=[("transaction_id", t) for t in txs])
    body = r.json()
    assert r.status_code == 200, body
    assert (body["count"], body["offset"], body["limit"]) == (3, 0, 100)
    assert [e["transaction_id"] for e in body["workflow_executions"]] == txs  # created_at ascending
    assert set(body["workflow_executions"][0]) == {"id", "workflow_id", "transaction_id", "state", "created_at",
                                                   "updated_at", "deleted_at"}  # Medusa's list defaults

    page = (await client.get(BASE, params={"q": tx, "order": "-created_at", "limit": 2, "offset": 1,
                                           "state": "done"})).json()
    assert (page["count"], page["limit"], page["offset"]) == (3, 2, 1)
    assert [e["transaction_id"] for e in page["workflow_executions"]] == [txs[1], txs[0]]

    # qs's forms (what @medusajs/js-sdk sends): state[0]=..., and operators in brackets
    states = (await client.get(f"{BASE}?q={tx}&state[0]=failed&state[1]=reverted")).json()
    assert [e["transaction_id"] for e in states["workflow_executions"]] == [f"{tx}-failed"]
    # (times are shown to the millisecond: one more is after the second run, before the third)
    created = dt.datetime.fromisoformat((await latest(client, "http-hello", txs[1]))["created_at"])
    later = (created + dt.timedelta(milliseconds=1)).isoformat()
    after = (await client.get(BASE, params={"q": tx, "created_at[$gte]": later, "state[]": "done"})).json()
    assert [e["transaction_id"] for e in after["workflow_executions"]] == [txs[2]]
    none = (await client.get(BASE, params={"q": tx, "created_at[$gt]": "2999-01-01T00:00:00Z"})).json()
    assert none["count"] == 0 and none["workflow_executions"] == []

    slim = (await client.get(BASE, params={"transaction_id": txs[0], "fields": "state"})).json()
    assert slim["workflow_executions"] == [{"id": slim["workflow_executions"][0]["id"], "state": "done"}]
    more = (await client.get(BASE, params={"transaction_id": txs[0], "fields": "+run_id,-deleted_at"})).json()
    assert set(more["workflow_executions"][0]) == {"id", "workflow_id", "transaction_id", "state", "created_at",
                                                   "updated_at", "run_id"}


async def test_a_waiting_step_completed_through_steps_success(client: httpx.AsyncClient, tx: str) -> None:
    ack = (await client.post(f"{BASE}/http-approval/run", json={"input": "order-1", "transaction_id": tx})
           ).json()["acknowledgement"]
    assert (ack["hasFinished"], ack["hasFailed"]) == (False, False)
    assert (await latest(client, "http-approval", tx))["state"] == "invoking"
    r = await client.post(f"{BASE}/http-approval/steps/success",
                          json={"transaction_id": tx, "step_id": "http-approve", "response": "yes"})
    assert (r.status_code, r.json()) == (200, {"success": True})
    record = await state_becomes(client, "http-approval", tx, "done")
    assert record["context"]["data"]["invoke"]["http-finish"] == {"finished": "yes"}
    again = await client.post(f"{BASE}/http-approval/steps/success",
                              json={"transaction_id": tx, "step_id": "http-approve", "response": "twice"})
    assert again.status_code == 400 and again.json()["type"] == "not_allowed"  # the first completion won


async def test_a_waiting_step_failed_through_steps_failure_compensates(client: httpx.AsyncClient, tx: str) -> None:
    await client.post(f"{BASE}/http-approval/run", json={"input": tx, "transaction_id": tx})
    r = await client.post(f"{BASE}/http-approval/steps/failure",
                          json={"transaction_id": tx, "step_id": "http-approve", "response": "refused",
                                "action": "INVOKE"})
    assert (r.status_code, r.json()) == (200, {"success": True})
    await state_becomes(client, "http-approval", tx, "reverted")
    assert f"prepare {tx}" in workflows.undone


async def test_steps_retry_invokes_the_waiting_step_again(client: httpx.AsyncClient, tx: str) -> None:
    await client.post(f"{BASE}/http-approval/run", json={"input": tx, "transaction_id": tx})
    before = (await latest(client, "http-approval", tx))["execution"]["steps"]
    step = next(s for key, s in before.items() if key.endswith("http-approve"))
    r = await client.post(f"{BASE}/http-approval/steps/retry", json={"transaction_id": tx, "step_id": "http-approve"})
    assert (r.status_code, r.json()) == (200, {"success": True})
    after = (await latest(client, "http-approval", tx))["execution"]["steps"]
    again = next(s for key, s in after.items() if key.endswith("http-approve"))
    assert again["attempts"] > step["attempts"]
    assert again["invoke"]["state"] in ("invoking", "waiting_response")


async def test_cancel_reverts_and_answers_the_execution(client: httpx.AsyncClient, tx: str) -> None:
    await client.post(f"{BASE}/http-approval/run", json={"input": tx, "transaction_id": tx})
    r = await client.post(f"{BASE}/http-approval/{tx}/cancel")
    assert r.status_code == 200, r.text
    record = r.json()["workflow_execution"]
    assert (record["transaction_id"], record["state"]) == (tx, "reverted")
    assert (await latest(client, "http-approval", tx))["state"] == "reverted"


async def test_a_long_run_answers_after_the_wait_and_goes_on(client: httpx.AsyncClient, tx: str) -> None:
    """The server waits at most wait_timeout (1 s here) for a run; the run finishes in the background."""
    r = await client.post(f"{BASE}/http-slow/run", json={"input": 2.0, "transaction_id": tx})
    assert r.json()["acknowledgement"] == {"workflowId": "http-slow", "transactionId": tx, "hasFinished": False,
                                           "hasFailed": False}
    again = await client.post(f"{BASE}/http-slow/run", json={"input": 0.0, "transaction_id": tx})
    assert again.status_code == 409 and again.json()["type"] == "conflict"  # the transaction is running
    record = await state_becomes(client, "http-slow", tx, "done")
    assert record["context"]["data"]["invoke"]["http-nap"] == "slept"
