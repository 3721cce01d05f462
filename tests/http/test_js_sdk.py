"""Medusa's own admin client, ``@medusajs/js-sdk`` (npm, pinned in tests/clients/js-sdk), configured
with an API key, lists and retrieves executions from a running stepwork server. ``make test``
installs it with ``npm ci``; without node or the installed package this test fails, saying so."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.http.conftest import Served

CLIENT = Path(__file__).resolve().parents[1] / "clients" / "js-sdk"
BASE = "/admin/workflows-executions"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the @medusajs/js-sdk test needs Node.js 18+ and npm "
                    "(then `make test` runs `npm ci` in tests/clients/js-sdk).", pytrace=False)
    if not (CLIENT / "node_modules" / "@medusajs" / "js-sdk" / "package.json").exists():
        pytest.fail(f"@medusajs/js-sdk is not installed: run `npm ci --no-audit --no-fund` in {CLIENT} "
                    "(`make test` does).", pytrace=False)
    return node


async def test_medusa_js_sdk_lists_and_retrieves_executions(served: Served, tx: str) -> None:
    node = _node()
    async with served.client() as c:
        r = await c.post(f"{BASE}/http-hello/run", json={"input": {"name": "Medusa"}, "transaction_id": tx})
        assert r.json()["acknowledgement"]["hasFinished"] is True
        expected_id = (await c.get(f"{BASE}/http-hello/{tx}")).json()["workflow_execution"]["id"]
    env = {**os.environ, "STEPWORK_URL": served.base_url, "STEPWORK_KEY": served.key, "STEPWORK_TX": tx}
    proc = await asyncio.create_subprocess_exec(node, "check.mjs", cwd=CLIENT, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    got = json.loads(out.decode().strip().splitlines()[-1])
    assert (got["count"], got["limit"], got["offset"]) == (1, 10, 0)
    assert got["listed"] == [{"id": expected_id, "transaction_id": tx, "state": "done"}]
    assert got["retrieved"]["id"] == expected_id and got["retrieved"]["state"] == "done"
    assert any(step.endswith("http-greet") for step in got["retrieved"]["steps"])
    assert got["retrieved"]["invoke"] == {"http-greet": {"greeting": "hello Medusa"}}
    assert got["wrongKey"]["status"] == 401 and "not valid" in got["wrongKey"]["message"]
    assert got["missing"]["status"] == 404 and "wf_exec_missing" in got["missing"]["message"]
