"""Finding 3: integers beyond Python's 4,300-digit str limit in stored payloads.

As a stored workflow's input, ``10**5000`` raised a bare ``ValueError``; as a step output, the run
failed with a message that does not name the step. Both must be ``StepworkError`` ``invalid_data``
naming where the value is.
"""

from __future__ import annotations

from typing import Any

import pytest

from stepwork import StepworkError, WorkflowEngine, create_step, create_workflow

HUGE = 10**5000  # more digits than int -> str allows by default (sys.get_int_max_str_digits() == 4300)


async def test_huge_integer_workflow_input_is_invalid_data_naming_the_input(engine: WorkflowEngine,
                                                                             wf_name: str) -> None:
    s = create_step("s", lambda v: None)
    wf = create_workflow({"name": wf_name, "store": True}, lambda inp: s(inp))
    with pytest.raises(StepworkError) as err:
        await engine.run(wf, {"n": HUGE})
    assert err.value.type == "invalid_data"
    message = str(err.value).lower()
    assert "input" in message and "workflow" in message


async def test_huge_integer_step_output_is_invalid_data_naming_the_step(engine: WorkflowEngine,
                                                                         wf_name: str) -> None:
    def count(value: Any) -> int:
        return HUGE

    s = create_step("count-atoms", count)
    wf = create_workflow({"name": wf_name, "store": True}, lambda inp: s(inp))
    with pytest.raises(StepworkError) as err:
        await engine.run(wf, 1)
    assert err.value.type == "invalid_data"
    assert "count-atoms" in str(err.value)
