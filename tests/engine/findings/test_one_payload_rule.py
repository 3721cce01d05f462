"""Finding 2: one payload rule for stored workflows, with or without an engine.

A workflow with ``store: True`` run in memory (``wf.run(...)`` without an engine) accepted a step
output that the engine refuses (``invalid_data … cannot be stored``). It must be refused in memory
the same way (same error type and message); workflows that are not stored keep accepting any value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from stepwork import StepworkError, WorkflowEngine, create_step, create_workflow


class Opaque:
    """An object of a type the stored-payload rules do not know."""


UNSTORABLE: list[Any] = [
    pytest.param(Opaque, id="object"),
    pytest.param(lambda: b"raw bytes", id="bytes"),
    pytest.param(lambda: {1: "one"}, id="int-key"),
]


@pytest.mark.parametrize("make_value", UNSTORABLE)
async def test_stored_workflow_in_memory_refuses_what_the_engine_refuses(wf_name: str,
                                                                          make_value: Callable[[], Any]) -> None:
    """The engine refuses the output with invalid_data; an in-memory run of the same stored
    workflow raises the same error type and message."""
    produce = create_step("produce", lambda v: make_value())
    wf = create_workflow({"name": wf_name, "store": True}, lambda inp: produce(inp))
    async with WorkflowEngine("sqlite://", poll_interval=3600) as engine:
        with pytest.raises(StepworkError) as by_engine:
            await engine.run(wf, 1)
    assert by_engine.value.type == "invalid_data"
    assert "cannot be stored" in str(by_engine.value)

    with pytest.raises(StepworkError) as in_memory:
        await wf.run(1)
    assert in_memory.value.type == by_engine.value.type
    assert str(in_memory.value) == str(by_engine.value)


@pytest.mark.parametrize("make_value", UNSTORABLE)
async def test_workflow_that_is_not_stored_accepts_any_value_in_memory(wf_name: str,
                                                                       make_value: Callable[[], Any]) -> None:
    """Control (holds today, must keep holding): without storing, any Python value passes."""
    produce = create_step("produce", lambda v: make_value())
    wf = create_workflow(wf_name, lambda inp: produce(inp))
    result = await wf.run(1)
    assert result.transaction.state == "done"
    assert type(result.result) is type(make_value())
