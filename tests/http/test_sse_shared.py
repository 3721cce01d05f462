"""On PostgreSQL, an SSE stream carries the events of runs that another engine drives (another
worker process, in production): the server's engine did not run them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from stepwork import WorkflowEngine
from tests.conftest import throwaway_pg_database
from tests.http.conftest import Served, serve
from tests.http.test_sse import BASE, read_events, wait_subscribed

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def served_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with throwaway_pg_database("stepwork_sse") as url:
        yield from serve(url, tmp_path_factory.mktemp("sse"), None)


async def test_a_stream_carries_the_events_of_a_run_another_engine_drives(served_pg: Served, tx: str) -> None:
    async with (WorkflowEngine(served_pg.database_url, poll_interval=0.2, concurrency=0) as worker,
                served_pg.client() as listener,
                listener.stream("GET", f"{BASE}/http-hello/subscribe") as stream):
        lines = await wait_subscribed(stream)
        assert worker.shared is not None
        async with asyncio.timeout(10):
            while not worker.shared.wants("http-hello"):
                await asyncio.sleep(0.01)
        result = await worker.run("http-hello", {"name": "Elsewhere"}, transaction_id=tx)
        assert result.transaction.state == "done"
        events = await read_events(lines, lambda name, data: name == "on_finish")
    names = [name for name, _ in events]
    assert names[0] == "on_begin" and names[-1] == "on_finish", names
    assert all(data["transaction_id"] == tx for _, data in events)
    assert served_pg.extra["engine"].queue.claimed == 0  # (the server's engine drove nothing)
    assert worker.shared.sent >= len(events)

