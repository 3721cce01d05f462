"""The detail routes keep a finished execution's encoded body and answer it with an ETag (304 when
the client has it); an unfinished one is read afresh every time; a change of the execution (a new
run, retention) is a new body."""

from __future__ import annotations

import httpx

from stepwork.http.record_cache import BodyCache
from tests.http.test_routes import BASE, state_becomes


async def test_a_finished_execution_has_an_etag_and_a_matching_if_none_match_is_a_304(
        client: httpx.AsyncClient, tx: str) -> None:
    await client.post(f"{BASE}/http-hello/run", json={"input": {"name": "Cy"}, "transaction_id": tx})
    first = await client.get(f"{BASE}/http-hello/{tx}")
    etag = first.headers["etag"]
    record = first.json()["workflow_execution"]
    assert record["state"] == "done"
    by_id = await client.get(f"{BASE}/{record['id']}")
    again = await client.get(f"{BASE}/{record['id']}")  # from the kept body
    assert (by_id.headers["etag"], again.headers["etag"]) == (etag, etag)
    assert by_id.content == again.content and again.json() == {"workflow_execution": record}
    for path in (f"{BASE}/{record['id']}", f"{BASE}/http-hello/{tx}"):
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            r = await client.get(path, headers={"If-None-Match": header})
            assert (r.status_code, r.content, r.headers["etag"]) == (304, b"", etag)
        assert (await client.get(path, headers={"If-None-Match": '"other"'})).status_code == 200
    picked = await client.get(f"{BASE}/{record['id']}", params={"fields": "state"})
    assert picked.headers["etag"] != etag  # another body, another tag
    assert picked.json() == {"workflow_execution": {"id": record["id"], "state": "done"}}
    assert (await client.get(f"{BASE}/{record['id']}", params={"fields": "state"},
                             headers={"If-None-Match": etag})).status_code == 200


async def test_an_unfinished_execution_has_no_etag_and_its_finish_is_seen(client: httpx.AsyncClient,
                                                                            tx: str) -> None:
    await client.post(f"{BASE}/http-approval/run", json={"input": tx, "transaction_id": tx})
    waiting = await client.get(f"{BASE}/http-approval/{tx}")
    assert waiting.json()["workflow_execution"]["state"] == "invoking" and "etag" not in waiting.headers
    await client.post(f"{BASE}/http-approval/{tx}/cancel")
    record = await state_becomes(client, "http-approval", tx, "reverted")
    done = await client.get(f"{BASE}/{record['id']}")
    assert done.json() == {"workflow_execution": record} and "etag" in done.headers


async def test_a_new_run_of_a_transaction_is_a_new_body(client: httpx.AsyncClient, tx: str) -> None:
    await client.post(f"{BASE}/http-hello/run", json={"input": {"name": "one"}, "transaction_id": tx})
    first = await client.get(f"{BASE}/http-hello/{tx}")
    await client.post(f"{BASE}/http-hello/run", json={"input": {"name": "two"}, "transaction_id": tx})
    second = await client.get(f"{BASE}/http-hello/{tx}")
    assert second.headers["etag"] != first.headers["etag"]
    greeting = second.json()["workflow_execution"]["context"]["data"]["invoke"]["http-greet"]
    assert greeting == {"greeting": "hello two"}


def test_the_body_cache_keeps_at_most_its_limit_dropping_the_least_recently_used() -> None:
    cache = BodyCache(limit=10)
    cache.put(("a",), b"1234")
    cache.put(("b",), b"1234")
    assert cache.get(("a",)) == b"1234"  # now the most recently used
    cache.put(("c",), b"1234")  # 12 bytes: b goes
    assert (cache.get(("b",)), cache.get(("a",)), cache.get(("c",)), cache.size) == (None, b"1234", b"1234", 8)
    cache.put(("d",), b"x" * 11)  # over the whole limit: not kept, nothing dropped
    assert (cache.get(("d",)), cache.size) == (None, 8)
    cache.put(("a",), b"12")  # replaced: its old size is given back
    assert cache.size == 6


async def test_a_client_that_accepts_gzip_gets_the_kept_body_compressed(client: httpx.AsyncClient, tx: str) -> None:
    """gzip for clients that ask for it (httpx, browsers do), the plain body for the others; each
    representation has its own ETag, and either one answers If-None-Match with a 304."""
    await client.post(f"{BASE}/http-hello/run", json={"input": {"name": "Zed" * 400}, "transaction_id": tx})
    plain = await client.get(f"{BASE}/http-hello/{tx}", headers={"Accept-Encoding": "identity"})
    zipped = await client.get(f"{BASE}/http-hello/{tx}", headers={"Accept-Encoding": "br, gzip;q=0.8"})
    assert "content-encoding" not in plain.headers and zipped.headers["content-encoding"] == "gzip"
    assert plain.headers["vary"] == zipped.headers["vary"] == "Accept-Encoding"
    assert zipped.content == plain.content and zipped.json()["workflow_execution"]["state"] == "done"
    assert zipped.num_bytes_downloaded < len(plain.content) / 3
    assert zipped.headers["etag"] != plain.headers["etag"]
    refused = await client.get(f"{BASE}/http-hello/{tx}", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    for tag in (plain.headers["etag"], zipped.headers["etag"]):
        again = await client.get(f"{BASE}/http-hello/{tx}", headers={"If-None-Match": tag})
        assert again.status_code == 304
