"""Crash recovery: a worker process is SIGKILLed at a known point; another engine resumes its work.

The killed worker's lease (0.5 s) expires and this process's engine takes the execution over. Steps
that completed are never run again; the interrupted one runs again with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwork.engine.engine import WorkflowEngine
from stepwork.engine.recovery import recover_orphans
from tests.engine import crash_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def crash_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STEPWORK_CRASH_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def shared_url(database_url: str, tmp_path: Path) -> str:
    """The backend's URL, with a file instead of a private in-memory SQLite database."""
    return f"sqlite:///{tmp_path / 'crash.db'}" if database_url == "sqlite://" else database_url


@pytest.fixture
def worker(crash_dir: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(url: str, mode: str, faults: str = "") -> subprocess.Popen[bytes]:
        env = {**os.environ, "STEPWORK_CRASH_DIR": str(crash_dir), "STEPWORK_FAULTS": faults}
        # A transaction id of the test's own: the PostgreSQL database is shared by the whole session.
        proc = subprocess.Popen([sys.executable, "-m", "tests.engine.crash_app", url, mode, tid(crash_dir)],
                                cwd=ROOT, env=env)
        procs.append(proc)
        return proc
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


async def wait_for_file(path: Path, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not path.exists():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{path.name} never appeared")
        await asyncio.sleep(0.02)


def tid(crash_dir: Path) -> str:
    return f"crash-{crash_dir.name}"


async def recovered_state(url: str, workflow: str, crash_dir: Path, timeout: float = 20.0) -> str:
    """Start an engine and wait until it has taken the execution over and finished it."""
    async with WorkflowEngine(url, lease_ttl=0.5, poll_interval=0.05) as engine:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            rows = await engine.list_workflow_executions({"workflow_id": workflow,
                                                          "transaction_id": tid(crash_dir)})
            if rows and rows[0].state in ("done", "reverted", "failed"):
                return rows[0].state
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"not recovered: {[r.state for r in rows]}")
            await asyncio.sleep(0.05)


def log_lines(crash_dir: Path) -> list[str]:
    return (crash_dir / "log").read_text().splitlines()


async def test_killed_mid_step_resumes_without_rerunning_completed_steps(worker: Any, shared_url: str,
                                                                        crash_dir: Path) -> None:
    """SIGKILL while step 3 of 4 runs: s1 and s2 are not run again, s3 runs again with the same
    idempotency key, s4 runs once (R01, R02)."""
    proc = worker(shared_url, "mid-step")
    await wait_for_file(crash_dir / "s3.invoke.started")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (crash_dir / "release").write_text("1")
    assert await recovered_state(shared_url, "crash-mid-step", crash_dir) == "done"
    lines = log_lines(crash_dir)
    assert [line.split(":")[0] for line in lines] == ["s1", "s2", "s3", "s3", "s4"]
    s3_keys = {line.split(":", 2)[2] for line in lines if line.startswith("s3:")}
    assert s3_keys == {f"crash-mid-step:{tid(crash_dir)}:s3:invoke"}


async def test_killed_after_a_side_effect_before_its_checkpoint_reruns_only_that_step(
        worker: Any, shared_url: str, crash_dir: Path) -> None:
    """Fault point step.returned:f2 kills the worker after f2's side effect, before its result is
    stored: f2 runs again with the same idempotency key, f1 does not (R02)."""
    proc = worker(shared_url, "fault-window", faults="step.returned:f2=kill")
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert await recovered_state(shared_url, "crash-fault-window", crash_dir) == "done"
    lines = log_lines(crash_dir)
    assert [line.split(":")[0] for line in lines] == ["f1", "f2", "f2", "f3"]
    assert {line.split(":", 2)[2] for line in lines if line.startswith("f2:")} == {
        f"crash-fault-window:{tid(crash_dir)}:f2:invoke"}


async def test_killed_right_after_a_checkpoint_resumes_at_that_step(worker: Any, shared_url: str,
                                                                    crash_dir: Path) -> None:
    """Fault point checkpoint.after:f2 kills the worker once f2's start is stored: f1 is not run
    again, f2 and f3 run once each."""
    proc = worker(shared_url, "fault-window", faults="checkpoint.after:f2=kill")
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert await recovered_state(shared_url, "crash-fault-window", crash_dir) == "done"
    assert [line.split(":")[0] for line in log_lines(crash_dir)] == ["f1", "f2", "f3"]


async def test_killed_mid_compensation_continues_the_rollback(worker: Any, shared_url: str,
                                                               crash_dir: Path) -> None:
    """SIGKILL during the second of three compensations: the finished one is not repeated, the rest
    complete, the execution ends reverted (R03)."""
    proc = worker(shared_url, "mid-compensation")
    await wait_for_file(crash_dir / "c2.compensate.started")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (crash_dir / "release").write_text("1")
    assert await recovered_state(shared_url, "crash-mid-compensation", crash_dir) == "reverted"
    compensations = [line.split(":")[0] for line in log_lines(crash_dir) if ":compensate:" in line]
    assert compensations == ["c3", "c2", "c2", "c1"]


async def test_killed_while_a_retry_timer_is_pending_retries_after_restart(worker: Any, shared_url: str,
                                                                           crash_dir: Path) -> None:
    """SIGKILL while a retry waits on its timer: after restart the retry fires and the run ends (R07)."""
    proc = worker(shared_url, "retry-timer")
    await wait_for_file(crash_dir / "suspended")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert await recovered_state(shared_url, "crash-retry-timer", crash_dir) == "done"
    attempts = [line.rsplit(":", 1)[1] for line in log_lines(crash_dir)]
    assert attempts == ["attempt1", "attempt2"]


_ = crash_app  # imported so the recovering engine knows the workflows


async def test_zombie_owner_loses_the_execution_and_its_late_writes_are_rejected(shared_url: str,
                                                                                wf_name: str) -> None:
    """Engine A stalls past its lease; engine B takes over and finishes; A's late checkpoint is
    rejected by the version fence and A's call fails with conflict (R13)."""
    from stepwork import StepworkError, create_step, create_workflow
    from tests.conftest import FakeClock

    gate = asyncio.Event()
    calls: list[str] = []

    async def first(value: Any) -> str:
        calls.append("first")
        if len(calls) == 1:
            await gate.wait()  # A's invocation stalls here
        return "first-out"

    second = create_step("second", lambda v: calls.append("second") or "second-out")
    first_step = create_step("first", first)
    wf = create_workflow({"name": wf_name, "retention_time": 600}, lambda inp: second(first_step(inp)))
    clock_a, clock_b = FakeClock(), FakeClock()
    async with WorkflowEngine(shared_url, lease_ttl=5, poll_interval=60, clock=clock_a) as a, \
            WorkflowEngine(shared_url, lease_ttl=5, poll_interval=60, clock=clock_b) as b:
        task = asyncio.create_task(a.run(wf, 1, transaction_id="zombie"))
        while not calls:
            await asyncio.sleep(0.01)
        clock_b.advance(10)  # from B's point of view A's lease has expired
        await recover_orphans(b)
        [row] = await b.list_workflow_executions({"workflow_id": wf_name})
        assert row.state == "done"
        gate.set()
        with pytest.raises(StepworkError) as err:
            await task
        assert err.value.type == "conflict"
        [row] = await b.list_workflow_executions({"workflow_id": wf_name})
        assert row.state == "done"
    assert calls == ["first", "first", "second"]
