"""Finding 6: ``Workflow with id "…" not found`` where a process completes or recovers an execution of
a workflow it does not define.

Another process (a child Python process here) defines the workflow and leaves a stored execution:
waiting on an async step, or crashed in the middle of a step. This process never imported that
workflow. The error must tell the user that the module defining the workflow has to be imported in
every process that runs or completes it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import stepwork
from stepwork import StepworkError, WorkflowEngine

CHILD_NOW = 1_800_000_000.0

CHILD = textwrap.dedent("""
    import asyncio, os, sys
    from stepwork import WorkflowEngine, create_step, create_workflow

    url, name, mode = sys.argv[1:4]

    class Clock:
        def time(self):
            return CHILD_NOW

    def crash(value):
        os._exit(0)  # the process dies in the middle of the step (after its start was checkpointed)

    if mode == "wait":
        s = create_step({"name": "wait", "async": True}, lambda v: None)
    else:
        s = create_step("crash", crash)
    wf = create_workflow({"name": name, "store": True, "retention_time": 60}, lambda inp: s(inp))

    async def main():
        async with WorkflowEngine(url, clock=Clock(), lease_ttl=5, poll_interval=3600) as engine:
            await engine.run(wf, 1, transaction_id="tx")

    asyncio.run(main())
""").replace("CHILD_NOW", repr(CHILD_NOW))


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def _other_process(url: str, name: str, mode: str) -> None:
    """Run the workflow ``name`` in a child process that defines it (this process never does)."""
    src = str(Path(stepwork.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", CHILD, url, name, mode], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def _texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    out = []
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + str(record.exc_info[1])
        out.append(text)
    return out


async def test_completing_a_workflow_this_process_does_not_define_explains_the_fix(tmp_path: Path,
                                                                                    wf_name: str) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    _other_process(url, wf_name, "wait")
    async with WorkflowEngine(url, clock=_Clock(CHILD_NOW + 1), poll_interval=3600) as engine:
        [row] = await engine.list_workflow_executions({"workflow_id": wf_name})
        assert row.state == "invoking"
        with pytest.raises(StepworkError) as err:
            await engine.set_step_success(f"{wf_name}:tx:wait:invoke", "ok")
    message = str(err.value)
    assert wf_name in message
    rest = message.replace(wf_name, "").lower()  # the test's own name must not count
    assert "import" in rest and "every process" in rest, message


async def test_recovering_a_workflow_this_process_does_not_define_explains_the_fix(
        tmp_path: Path, wf_name: str, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    _other_process(url, wf_name, "crash")
    caplog.set_level(logging.INFO)
    # Long after the dead owner's lease ran out: starting the engine recovers the execution.
    async with WorkflowEngine(url, clock=_Clock(CHILD_NOW + 10_000), lease_ttl=5, poll_interval=3600) as engine:
        await engine.fire_due()
        [row] = await engine.list_workflow_executions({"workflow_id": wf_name})
        assert row.state == "invoking"
    texts = [t.replace(wf_name, "<workflow>").lower() for t in _texts(caplog) if wf_name in t]
    assert texts, "the failed recovery was not reported"
    assert any("import" in t and "every process" in t for t in texts), texts
