"""benchmarks/floors.py: the replay of a run's statements is faithful (every replayed run is stored
as the recorded one was), and the floor figures come out on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.floors import measure_floors
from stepwork import StepResponse, WorkflowEngine, create_step, create_workflow


async def test_floors_replay_the_runs_statements(database_url: str, wf_name: str) -> None:
    bumps = [create_step(f"{wf_name}-bump-{i}", lambda n, ctx: StepResponse(n + 1)) for i in range(3)]

    def compose(n: Any) -> Any:
        for bump in bumps:
            n = bump(n)
        return n

    wf = create_workflow({"name": wf_name, "store": True, "retention_time": 3600}, compose)
    async with WorkflowEngine(database_url) as engine:
        fields = await measure_floors(engine, lambda: engine.run(wf, 1), 4, 3, 4 / 3)
        executions = await engine.list_workflow_executions({"workflow_id": wf_name})
    # the recorded run and its four replays (on SQLite four more, in one transaction), each with its
    # own ids, all finished
    expected = 9 if database_url.startswith("sqlite") else 5
    assert len(executions) == expected
    assert {e.state for e in executions} == {"done"}
    assert len({e.transaction_id for e in executions}) == expected
    assert fields["sql_replay_runs"] == 4
    assert fields["sql_replay_statements_per_run"] >= 4  # an insert, two boundaries, the finish
    assert fields["sql_replay_us_per_step"] > 0 and fields["commit_us"] > 0
    assert fields["commit_floor_us_per_step"] == pytest.approx(fields["commit_us"] * 4 / 3, abs=0.02)
    if database_url.startswith("sqlite"):
        assert fields["minimal_schema_us_per_step"] > 0
        assert fields["sql_replay_one_transaction_us_per_step"] > 0
    else:
        assert fields["round_trip_us"] > 0
