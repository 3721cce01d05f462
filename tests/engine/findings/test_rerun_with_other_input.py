"""Finding 5: running a waiting execution's transaction id again with a different input.

The run resumes the stored execution and silently drops the new input. Expected: a logged warning
naming the transaction id and saying the stored input is used.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from stepwork import WorkflowEngine, create_step, create_workflow


async def test_rerun_of_a_waiting_execution_with_another_input_warns(engine: WorkflowEngine, wf_name: str,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Any] = []
    wait = create_step({"name": "wait", "async": True}, lambda v: seen.append(v))
    wf = create_workflow({"name": wf_name, "retention_time": 60}, lambda inp: wait(inp))
    first = await engine.run(wf, {"qty": 1}, transaction_id="order-4711")
    assert first.transaction.state == "invoking"

    caplog.set_level(logging.WARNING)
    again = await engine.run(wf, {"qty": 2}, transaction_id="order-4711")
    assert again.transaction.state == "invoking"
    assert again.transaction.run_id == first.transaction.run_id  # it resumed the stored execution
    assert seen == [{"qty": 1}]

    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("order-4711" in m and "stored" in m.lower() and "input" in m.lower() for m in messages), messages
