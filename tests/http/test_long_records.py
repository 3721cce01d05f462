"""A long workflow's record through the API: its ``definition`` nests one level per step (Medusa's
shape), deeper than ``json.dumps`` can recurse, and the routes still answer it; the list route reads
records only when its fields ask for them."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from stepwork import StepResponse, WorkflowResponse, create_step, create_workflow
from stepwork.http.deepjson import dumps, dumps_iteratively, record_body
from tests.http.conftest import eventually
from tests.http.workflows import STORED

BASE = "/admin/workflows-executions"
STEPS = 1100  # deeper than the default recursion limit (1,000)

_steps = [create_step(f"http-long-{i}", lambda v: StepResponse(v + 1)) for i in range(STEPS)]


def _compose(value: Any) -> WorkflowResponse[Any]:
    for s in _steps:
        value = s(value)
    return WorkflowResponse(value)


long_wf = create_workflow({"name": "http-long", **STORED}, _compose)


@pytest.fixture
def deep_reading() -> Iterator[None]:
    """Python's json.loads recurses too: reading the answer back needs a higher limit (JavaScript's does not)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    yield
    sys.setrecursionlimit(limit)


def test_the_iterative_encoding_is_json_dumps() -> None:
    value = {"a": [1, 2.5, None, True, "é\u2028", {"b": []}], 3: {"c": {}}, "d": [[], [[{"e": -1}]]]}
    assert dumps_iteratively(value) == dumps(value)
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["next"] = node = {"action": "x"}
    with pytest.raises(RecursionError):
        dumps(deep)
    record = {"id": "x", "execution": {"steps": {"a": 1}, "definition": deep}, "state": "done"}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(30_000)
    try:
        assert json.loads(record_body("workflow_execution", record)) == {"workflow_execution": record}
    finally:
        sys.setrecursionlimit(limit)


async def test_a_long_workflows_record_is_answered(client: httpx.AsyncClient, tx: str, deep_reading: None) -> None:
    r = await client.post(f"{BASE}/http-long/run", json={"input": 0, "transaction_id": tx})
    assert r.status_code == 200, r.text

    async def done() -> bool:
        [row] = (await client.get(BASE, params={"transaction_id": tx})).json()["workflow_executions"]
        return bool(row["state"] == "done")
    await eventually(done, timeout=60)  # (1,100 checkpoints: over a second on PostgreSQL)
    got = await client.get(BASE, params={"transaction_id": tx, "fields": "+execution,+context"})
    [listed] = got.json()["workflow_executions"]
    assert len(listed["execution"]["steps"]) == STEPS + 1  # (and "_root")
    assert listed["context"]["data"]["invoke"][f"http-long-{STEPS - 1}"] == STEPS

    one = await client.get(f"{BASE}/{listed['id']}")
    assert one.status_code == 200, one.text[:300]
    record = one.json()["workflow_execution"]
    depth, node = 0, record["execution"]["definition"]
    while "next" in node:
        node, depth = node["next"], depth + 1
    assert depth == STEPS
    latest = await client.get(f"{BASE}/http-long/{tx}")
    assert latest.status_code == 200 and latest.json() == one.json()

    slim = (await client.get(BASE, params={"transaction_id": tx})).json()["workflow_executions"]
    assert "execution" not in slim[0] and slim[0]["id"] == listed["id"]
