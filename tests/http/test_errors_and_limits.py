"""Every error is JSON {type, message} with its status, never a traceback; the request limits hold."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from stepwork.errors import StepworkError
from tests.http.conftest import Served, serve

BASE = "/admin/workflows-executions"


def _error(r: httpx.Response, status: int, type_: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"type", "message"} and body["type"] == type_, body
    assert "Traceback" not in r.text
    return str(body["message"])


@pytest.mark.parametrize(("request_", "status", "type_", "says"), [
    (("GET", f"{BASE}/wf_exec_NOPE", None), 404, "not_found", "wf_exec_NOPE"),
    (("GET", f"{BASE}/http-hello/no-such-tx", None), 404, "not_found", "no-such-tx"),
    (("POST", f"{BASE}/no-such-workflow/run", {}), 404, "not_found", "no-such-workflow"),
    (("POST", f"{BASE}/http-approval/steps/success", {"transaction_id": "none", "step_id": "http-approve"}),
     404, "not_found", "none"),
    (("POST", f"{BASE}/http-approval/steps/success", {"transaction_id": "none", "step_id": "no-step"}),
     404, "not_found", "no-step"),
    (("POST", f"{BASE}/http-approval/none/cancel", None), 404, "not_found", "none"),
    (("POST", f"{BASE}/http-hello/run", {"input": 1, "surprise": 2}), 400, "invalid_data", "surprise"),
    (("POST", f"{BASE}/http-approval/steps/success", {"step_id": "x"}), 400, "invalid_data", "transaction_id"),
    (("POST", f"{BASE}/http-approval/steps/success", {"transaction_id": "t", "step_id": "x", "action": "jump"}),
     400, "invalid_data", "action"),
    (("GET", f"{BASE}?limit=1001", None), 400, "invalid_data", "limit"),
    (("GET", f"{BASE}?limit=ten", None), 400, "invalid_data", "limit"),
    (("GET", f"{BASE}?offset=-1", None), 400, "invalid_data", "offset"),
    (("GET", f"{BASE}?colour=blue", None), 400, "invalid_data", "colour"),
    (("GET", f"{BASE}?created_at[$regex]=x", None), 400, "invalid_data", "$regex"),
    (("GET", f"{BASE}?created_at[$gt]=yesterday", None), 400, "invalid_data", "ISO-8601"),
    (("GET", f"{BASE}?order=colour", None), 400, "invalid_data", "colour"),
    (("GET", f"{BASE}?fields=colour", None), 400, "invalid_data", "colour"),
    (("GET", f"{BASE}/wf_exec_x?colour=1", None), 400, "invalid_data", "colour"),
    (("GET", f"{BASE}/{'x' * 257}", None), 400, "invalid_data", "256"),
    (("GET", f"{BASE}/http-hello/tx%01", None), 400, "invalid_data", "control"),
    (("GET", f"{BASE}?transaction_id=a%00b", None), 400, "invalid_data", "control"),
    (("GET", f"{BASE}?q={'q' * 300}", None), 400, "invalid_data", "q"),
    (("POST", f"{BASE}/http-hello/run", {"transaction_id": "t" * 257}), 400, "invalid_data", "transaction_id"),
    (("POST", f"{BASE}/http-approval/steps/retry", {"transaction_id": "a\nb", "step_id": "s"}), 400,
     "invalid_data", "control"),
    (("GET", "/admin/nothing-here", None), 404, "not_found", "/admin/nothing-here"),
    (("DELETE", f"{BASE}/wf_exec_x", None), 405, "not_allowed", "DELETE"),
])
async def test_errors_are_json_with_their_status(client: httpx.AsyncClient, request_: tuple[str, str, Any],
                                                 status: int, type_: str, says: str) -> None:
    method, url, body = request_
    r = await client.request(method, url, json=body) if body is not None else await client.request(method, url)
    assert says in _error(r, status, type_)


async def test_a_body_that_is_not_json_is_a_400(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{BASE}/http-hello/run", content=b"{not json", headers={"content-type": "application/json"})
    assert "JSON" in _error(r, 400, "invalid_data")


async def test_a_body_over_one_mib_is_a_413(client: httpx.AsyncClient) -> None:
    big = {"input": "x" * (1024 * 1024)}
    assert "1048576" in _error(await client.post(f"{BASE}/http-hello/run", json=big), 413, "invalid_data")

    async def chunks() -> Any:  # no Content-Length: the limit is counted as the body streams
        for _ in range(17):
            yield b"x" * 65536
    r = await client.post(f"{BASE}/http-hello/run", content=chunks(), headers={"content-type": "application/json"})
    _error(r, 413, "invalid_data")
    small = await client.post(f"{BASE}/http-hello/run", json={"input": {"name": "y" * 1000}})
    assert small.status_code == 200


# -- the status of every error type, and what nobody handled ----------------------------------------

def _add_failing_routes(app: FastAPI) -> None:
    @app.get("/admin/raise/{type_}")
    async def raise_stepwork_error(type_: str) -> None:
        raise StepworkError(type_, f"raised {type_}")

    @app.get("/admin/crash")
    async def crash() -> None:
        raise RuntimeError("secret internals")


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("failing")
    yield from serve(f"sqlite:///{tmp / 'db.sqlite'}", tmp, Path(tmp / "db.sqlite"), setup=_add_failing_routes)


@pytest.mark.parametrize(("type_", "status"), [
    ("invalid_data", 400), ("invalid_argument", 400), ("not_allowed", 400), ("unauthorized", 401),
    ("not_found", 404), ("conflict", 409), ("duplicate_error", 422), ("unexpected_state", 500),
    ("database_error", 500),
])
async def test_each_error_type_has_its_status(failing: Served, type_: str, status: int) -> None:
    async with failing.client() as c:
        assert _error(await c.get(f"/admin/raise/{type_}"), status, type_) == f"raised {type_}"


async def test_an_unexpected_exception_is_a_500_without_the_traceback(failing: Served) -> None:
    async with failing.client() as c:
        r = await c.get("/admin/crash")
    message = _error(r, 500, "unexpected_state")
    assert "secret internals" not in r.text and "RuntimeError" not in r.text
    assert "log" in message
    assert any("secret internals" in line for line in failing.log.lines)  # the server's log has it


_STEP = {"transaction_id": "none", "step_id": "http-approve"}


@pytest.mark.parametrize(("method", "url", "body"), [
    ("POST", f"{BASE}/http-hello/run", {"input": {"name": "q"}}),
    ("POST", f"{BASE}/http-approval/steps/success", _STEP),
    ("POST", f"{BASE}/http-approval/steps/failure", _STEP),
    ("POST", f"{BASE}/http-approval/steps/retry", _STEP),
    ("POST", f"{BASE}/http-approval/none/cancel", None),
    ("GET", f"{BASE}/http-hello/subscribe", None),
    ("GET", f"{BASE}/http-hello/none/subscribe", None),
])
async def test_an_unknown_query_parameter_is_a_400_on_the_action_and_stream_routes(
        client: httpx.AsyncClient, method: str, url: str, body: Any) -> None:
    r = await client.request(method, f"{url}?surprise=1", json=body)
    assert _error(r, 400, "invalid_data") == 'Unknown query parameter "surprise"; this route takes no query parameters.'


async def test_a_failure_answered_to_the_client_is_not_logged_again(served: Served, client: httpx.AsyncClient) -> None:
    r = await client.post(f"{BASE}/no-such-workflow-logged/run", json={})
    assert r.status_code == 404
    assert not [line for line in served.log.server_lines() if "no-such-workflow-logged" in line
                and "ended with" in line]


@pytest.mark.parametrize("path", [
    f"{BASE}/wf_exec_x?fields=id&fields=state",
    f"{BASE}/http-hello/tx-1?fields=id&fields=state",
    f"{BASE}?fields=id&fields=state",
])
async def test_a_repeated_fields_parameter_is_a_400_naming_it(client: httpx.AsyncClient, path: str) -> None:
    # Before, the detail routes read the last value and ignored the others.
    message = _error(await client.get(path), 400, "invalid_data")
    assert 'Query parameter "fields" is given more than once' in message


@pytest.mark.parametrize("name", ["q", "limit", "offset", "order"])
async def test_a_repeated_single_valued_list_parameter_is_a_400_naming_it(client: httpx.AsyncClient,
                                                                           name: str) -> None:
    message = _error(await client.get(BASE, params=[(name, "1"), (name, "2")]), 400, "invalid_data")
    assert f'"{name}" is given more than once' in message


async def test_the_detail_route_still_takes_one_fields_parameter(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{BASE}/wf_exec_x", params={"fields": "id,state"})
    assert _error(r, 404, "not_found")  # past the query check: the id does not exist
