"""Queued runs shared by several engines and worker processes: each run executed exactly once, a
graceful stop (grace period, then the rest put back in the queue for another engine at once), and
``stepwork worker --concurrency N`` as a real process, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import stepwork
from stepwork import StepContext, WorkflowEngine, WorkflowResponse, create_step, create_workflow
from stepwork.storage.base import ExecutionKey
from tests.engine.queue.conftest import states, until_finished

# The application module the worker processes run (the test process defines the same workflow).
APP = textwrap.dedent('''
    import asyncio
    import os

    from stepwork import WorkflowResponse, create_step, create_workflow


    async def work(n, ctx):
        # One line per invocation, appended (O_APPEND: lines of several processes never mix).
        with open(os.environ["QUEUE_LOG"], "a") as log:
            log.write(f"{ctx.transaction_id} {ctx.attempt} {os.getpid()}\\n")
        await asyncio.sleep(float(os.environ.get("QUEUE_STEP_SECONDS", "0.01")))
        return n * 2


    queue_proc = create_workflow({"name": "queue-proc", "retention_time": 3600},
                                 lambda n: WorkflowResponse(create_step("queue-proc-work", work)(n)))
''')


# -- engines in one process --------------------------------------------------------------------------


async def test_two_engines_run_50_queued_runs_each_exactly_once(shared_url: str, wf_name: str) -> None:
    calls: list[str] = []

    async def work(n: int, ctx: StepContext) -> int:
        calls.append(ctx.transaction_id)
        await asyncio.sleep(0.005)
        return n

    wf = create_workflow({"name": wf_name, "retention_time": 3600},
                         lambda n: WorkflowResponse(create_step(f"{wf_name}-work", work)(n)))
    async with (WorkflowEngine(shared_url, poll_interval=0.2, concurrency=0) as queuer,
                WorkflowEngine(shared_url, poll_interval=0.2, concurrency=5) as a,
                WorkflowEngine(shared_url, poll_interval=0.2, concurrency=5) as b):
        started = time.monotonic()
        for n in range(50):
            await queuer.run(wf, n, transaction_id=f"r-{n:02}", queue=True)
        found = await until_finished(queuer, wf_name, 50)
        took = time.monotonic() - started
    assert set(found.values()) == {"done"} and len(found) == 50
    assert collections.Counter(calls) == {f"r-{n:02}": 1 for n in range(50)}
    assert a.queue.claimed + b.queue.claimed == 50
    print(f"50 queued runs on 2 engines: {took:.2f} s ({50 / took:.0f} runs/s), "
          f"claimed {a.queue.claimed} + {b.queue.claimed}")


async def test_stopping_with_a_grace_period_lets_the_runs_in_flight_finish(shared_url: str, wf_name: str) -> None:
    began = asyncio.Event()
    started: list[int] = []

    async def work(n: int) -> int:
        started.append(n)
        if len(started) == 2:  # both in flight (the claim of the first may come before the second is queued)
            began.set()
        await asyncio.sleep(0.3)
        return n

    wf = create_workflow({"name": wf_name, "retention_time": 3600},
                         lambda n: WorkflowResponse(create_step(f"{wf_name}-work", work)(n)))
    async with WorkflowEngine(shared_url, poll_interval=60, concurrency=0) as queuer:
        worker = WorkflowEngine(shared_url, poll_interval=60, concurrency=2)
        await worker.start()
        await queuer.run(wf, 1, transaction_id="g-1", queue=True)
        await queuer.run(wf, 2, transaction_id="g-2", queue=True)
        worker.queue.wake.set()
        await asyncio.wait_for(began.wait(), 10)
        await worker.stop(grace=10)
        assert await states(queuer, wf_name) == {"g-1": "done", "g-2": "done"}


async def test_stopping_puts_what_is_left_back_in_the_queue_for_another_engine_at_once(
        shared_url: str, wf_name: str) -> None:
    attempts: list[int] = []
    began = asyncio.Event()

    async def work(n: int, ctx: StepContext) -> int:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            began.set()
            await asyncio.sleep(3600)  # never finishes in the first engine
        return n

    wf = create_workflow({"name": wf_name, "retention_time": 3600},
                         lambda n: WorkflowResponse(create_step(f"{wf_name}-work", work)(n)))
    # Leases of 60 s: the second engine takes the run from the queue, not after its lease expired.
    async with WorkflowEngine(shared_url, poll_interval=0.2, lease_ttl=60, concurrency=0) as other:
        first = WorkflowEngine(shared_url, poll_interval=60, lease_ttl=60)
        await first.start()
        queued = await first.run(wf, 7, transaction_id="h-1", queue=True)
        await asyncio.wait_for(began.wait(), 10)
        started = time.monotonic()
        await first.stop(grace=0.2)
        row = await other.store.get(ExecutionKey(wf_name, "h-1", queued.transaction.run_id))
        assert row is not None and (row.state, row.lease_owner) == ("invoking", None)
        other.queue.concurrency = 1
        assert await until_finished(other, wf_name, 1, within=20) == {"h-1": "done"}
        assert time.monotonic() - started < 15
        assert attempts == [1, 2]  # the interrupted step invoked again (its idempotency key is the same)


# -- worker processes --------------------------------------------------------------------------------


def _worker(tmp: Path, url: str, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    src = str(Path(stepwork.__file__).parents[1])
    full = {k: v for k, v in os.environ.items() if not k.startswith("STEPWORK_")}
    full.update(PYTHONPATH=os.pathsep.join([str(tmp), src]), PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="200",
                **env)
    return subprocess.Popen([sys.executable, "-m", "stepwork.cli", "worker", "--app", "queue_app",
                             "--database-url", url, *args], cwd=tmp, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_line(process: subprocess.Popen[str], text: str, within: float = 30.0) -> None:
    """Read the process's stdout until a line holds ``text``."""
    assert process.stdout is not None
    stream = process.stdout
    seen: list[str] = []

    def read() -> None:
        for line in stream:
            seen.append(line)
            if text in line:
                return
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(within)
    if not any(text in line for line in seen):
        process.kill()
        raise AssertionError(f"no {text!r} from the worker within {within} s: {seen}")


def _stop(process: subprocess.Popen[str], within: float = 30.0) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"the worker did not stop on SIGTERM:\n{out}\n{err}") from None
    return process.returncode, out, err


def _define_app() -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(APP, "queue_app.py", "exec"), namespace)  # the same workflow, in this process too
    return namespace["queue_proc"]


def _log(path: Path) -> list[tuple[str, int, int]]:
    if not path.exists():
        return []
    return [(t, int(a), int(p)) for t, a, p in (line.split() for line in path.read_text().splitlines())]


async def _until(check: Any, what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_worker_processes_share_50_queued_runs_each_exactly_once(
        shared_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "queue_app.py").write_text(APP)
    log = tmp_path / "invocations.log"
    monkeypatch.setenv("QUEUE_LOG", str(log))
    wf = _define_app()
    env = {"QUEUE_LOG": str(log), "QUEUE_STEP_SECONDS": "0.1"}
    workers = [_worker(tmp_path, shared_url, "--concurrency", "2", env=env) for _ in range(2)]
    try:
        for process in workers:
            _wait_for_line(process, "claiming queued runs, 2 at once")
        async with WorkflowEngine(shared_url, concurrency=0) as queuer:  # queues, never claims
            started = time.monotonic()
            for n in range(50):
                await queuer.run(wf, n, transaction_id=f"p-{n:02}", queue=True)
            found = await until_finished(queuer, "queue-proc", 50, within=60)
            took = time.monotonic() - started
        assert set(found.values()) == {"done"}
    finally:
        results = [_stop(process) for process in workers]
    assert [code for code, _, _ in results] == [0, 0], results
    invocations = _log(log)
    assert collections.Counter(t for t, _, _ in invocations) == {f"p-{n:02}": 1 for n in range(50)}
    by_pid = collections.Counter(p for _, _, p in invocations)
    assert set(by_pid) == {process.pid for process in workers}  # both took their share
    print(f"50 queued runs of 0.1 s on 2 worker processes (2 at once each): {took:.2f} s; {dict(by_pid)}")


@pytest.mark.slow
async def test_sigterm_stops_a_worker_that_puts_its_runs_back_for_another_at_once(
        shared_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "queue_app.py").write_text(APP)
    log = tmp_path / "invocations.log"
    monkeypatch.setenv("QUEUE_LOG", str(log))  # (this process's invocations are short)
    wf = _define_app()
    worker = _worker(tmp_path, shared_url, "--concurrency", "2", "--grace", "0.5",
                     env={"QUEUE_LOG": str(log), "QUEUE_STEP_SECONDS": "3600"})
    _wait_for_line(worker, "claiming queued runs")
    async with WorkflowEngine(shared_url, poll_interval=0.2, concurrency=0) as engine:
        for n in range(2):
            await engine.run(wf, n, transaction_id=f"s-{n}", queue=True)
        await _until(lambda: len(_log(log)) == 2, "the worker started both runs")
        started = time.monotonic()
        code, out, err = _stop(worker)
        assert code == 0, (out, err)
        assert "worker stopped" in out
        assert time.monotonic() - started < 15  # the grace period, not the hour-long steps
        rows = await engine.list_workflow_executions({"workflow_id": "queue-proc"})
        assert [(r.state, r.execution["state"]) for r in rows] == [("invoking", "invoking")] * 2
        # The worker's leases (30 s) were given back: this engine claims the runs at once.
        engine.queue.concurrency = 2
        assert await until_finished(engine, "queue-proc", 2, within=10) == {"s-0": "done", "s-1": "done"}
    assert sorted((t, a) for t, a, _ in _log(log)) == [("s-0", 1), ("s-0", 2), ("s-1", 1), ("s-1", 2)]


async def test_a_refused_completion_of_a_queued_run_leaves_it_in_the_queue(shared_url: str, wf_name: str) -> None:
    """A completion for a queued run that has not begun is refused (its step does not wait), and the
    run stays queued: the engine that claims runs later still finds it and drives it."""
    wf = create_workflow({"name": wf_name, "retention_time": 3600},
                         lambda n: WorkflowResponse(create_step(f"{wf_name}-work", lambda n: n + 1)(n)))
    async with WorkflowEngine(shared_url, poll_interval=0.2, concurrency=0) as queuer:
        await queuer.run(wf, 1, transaction_id="q-1", queue=True)
        with pytest.raises(stepwork.StepworkError):
            await queuer.set_step_success(f"{wf_name}:q-1:{wf_name}-work:invoke", 5)
        assert await states(queuer, wf_name) == {"q-1": "not_started"}
        async with WorkflowEngine(shared_url, poll_interval=0.2, concurrency=2):
            assert await until_finished(queuer, wf_name, 1) == {"q-1": "done"}
        [execution] = await queuer.list_workflow_executions({"workflow_id": wf_name})
        assert execution.execution["steps"][f"_root.{wf_name}-work"]["invoke"]["state"] == "done"
