"""The shop end to end over real HTTP: the routes run the brand workflows with the request's scope,
the hook publishes the CMS page, the subscriber handles ``brand.created`` only for brands that stay,
and a failure halfway rolls the brand back."""

from __future__ import annotations

import time
import uuid
from typing import Any

from examples.shop.tests.conftest import Shop


def _name(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def _wait_for(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _executions(shop: Shop, workflow_id: str) -> list[dict[str, Any]]:
    with shop.client(admin=True) as client:
        response = client.get("/admin/workflows-executions", params={"workflow_id": workflow_id, "limit": 100})
        assert response.status_code == 200, response.text
        executions: list[dict[str, Any]] = response.json()["workflow_executions"]
        return executions


def test_create_brand_publishes_and_announces(shop: Shop) -> None:
    name = _name("Acme")
    with shop.client() as client:
        created = client.post("/brands", json={"name": name})
        assert created.status_code == 200, created.text
        brand = created.json()["brand"]
        assert brand["name"] == name and brand["id"].startswith("brand_")
        assert shop.cms.pages[brand["id"]] == name  # the brand_created hook's handler ran
        note = f"Welcome, {name}! (brand {brand['id']})"
        _wait_for(lambda: note in shop.notes, "the brand.created subscriber")
        got = client.get(f"/brands/{brand['id']}")
        assert got.status_code == 200 and got.json()["brand"] == brand  # created_at read back as written
        listed = client.get("/brands", params={"q": name.split()[1]}).json()
        assert listed["brands"] == [brand] and listed["count"] == 1
        assert brand["created_at"].endswith("Z")
    assert shop.notes.count(note) == 1


def test_a_failure_halfway_rolls_the_brand_back(shop: Shop) -> None:
    name = _name("Globex")
    before = {e["transaction_id"] for e in _executions(shop, "create-brand")}
    shop.cms.down = True
    try:
        with shop.client() as client:
            failed = client.post("/brands", json={"name": name})
            assert failed.status_code == 500
            assert failed.json() == {"type": "unexpected_state",
                                     "message": "The CMS is unavailable (503); the brand page was not published."}
            assert client.get("/brands", params={"q": name.split()[1]}).json()["count"] == 0
    finally:
        shop.cms.down = False
    new = [e for e in _executions(shop, "create-brand") if e["transaction_id"] not in before]
    assert [e["state"] for e in new] == ["reverted"]
    with shop.client(admin=True) as client:
        record = client.get(f"/admin/workflows-executions/{new[0]['id']}").json()["workflow_execution"]
    steps = {s["definition"]["action"]: s for key, s in record["execution"]["steps"].items() if key != "_root"}
    assert steps["create-brand-step"]["compensate"]["state"] == "reverted"  # the brand was deleted again
    assert steps["brand_created"]["invoke"]["state"] == "failed"
    assert steps["emit-event-step"]["invoke"]["state"] == "not_started"
    time.sleep(0.2)  # give a wrongly released event the time to arrive
    assert not any(name in note for note in shop.notes)


def test_duplicate_names_and_bad_input(shop: Shop) -> None:
    name = _name("Initech")
    with shop.client() as client:
        assert client.post("/brands", json={"name": name}).status_code == 200
        duplicate = client.post("/brands", json={"name": name})
        assert duplicate.status_code == 422 and duplicate.json()["type"] == "duplicate_error"
        empty = client.post("/brands", json={"name": ""})
        assert empty.status_code == 400 and empty.json()["type"] == "invalid_data"
        assert client.get("/brands", params={"limit": 0}).status_code == 400


def test_delete_brand(shop: Shop) -> None:
    name = _name("Umbrella")
    with shop.client() as client:
        brand = client.post("/brands", json={"name": name}).json()["brand"]
        deleted = client.delete(f"/brands/{brand['id']}")
        assert deleted.status_code == 200
        assert deleted.json() == {"id": brand["id"], "object": "brand", "deleted": True}
        assert brand["id"] not in [b["id"] for b in client.get("/brands", params={"limit": 100}).json()["brands"]]
        missing = client.get(f"/brands/{brand['id']}")
        assert missing.status_code == 404 and missing.json()["type"] == "not_found"
        again = client.delete(f"/brands/{brand['id']}")
        assert again.status_code == 404 and again.json()["type"] == "not_found"


def test_the_admin_api_guards_its_routes_not_the_shops(shop: Shop) -> None:
    with shop.client() as client:
        assert client.get("/admin/workflows-executions").status_code == 401
        assert client.get("/brands").status_code == 200
        assert "/brands" in client.get("/openapi.json").json()["paths"]
