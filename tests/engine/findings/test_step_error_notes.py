"""Finding 4: a step's exception reaches the caller without the step's name (but in the traceback).

The raised exception must keep its type and carry the step name in an exception note
(``exc.__notes__``), in memory and through the engine.
"""

from __future__ import annotations

from typing import Any

import pytest

from stepwork import WorkflowEngine, create_step, create_workflow


def _charge(value: Any) -> None:
    raise ValueError("card declined")


def _has_step_note(exc: BaseException, step: str) -> bool:
    return any(step in note for note in getattr(exc, "__notes__", ()))


async def test_step_exception_in_memory_keeps_its_type_and_names_the_step(wf_name: str) -> None:
    s = create_step("charge-card", _charge)
    wf = create_workflow(wf_name, lambda inp: s(inp))
    with pytest.raises(ValueError, match="card declined") as err:
        await wf.run(1)
    assert _has_step_note(err.value, "charge-card"), getattr(err.value, "__notes__", None)


async def test_step_exception_through_the_engine_keeps_its_type_and_names_the_step(engine: WorkflowEngine,
                                                                                   wf_name: str) -> None:
    s = create_step("charge-card", _charge)
    wf = create_workflow({"name": wf_name, "store": True}, lambda inp: s(inp))
    with pytest.raises(ValueError, match="card declined") as err:
        await engine.run(wf, 1)
    assert _has_step_note(err.value, "charge-card"), getattr(err.value, "__notes__", None)
