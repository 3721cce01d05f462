"""Workflow versions (option ``version``): versions side by side in one registry, a stored execution
going on only on the definition it started with, stale executions (no live engine has their
version), worker heartbeats, and per-workflow concurrency limits of queued runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepwork import StepResponse, StepworkError, WorkflowEngine, WorkflowResponse, create_step, create_workflow
from stepwork.engine.registry import get_workflow, unregister_workflow, workflow_versions
from stepwork.storage.base import WorkerRow
from tests.conftest import FakeClock
from tests.engine.queue.conftest import states, until_finished


def two_steps(name: str, version: str, suffix: str, **options: Any) -> Any:
    """A workflow whose first step waits for an answer (async) and whose second step tags the result
    with ``suffix``, so a finished execution tells which version's code ran it."""
    def composer(n: Any) -> Any:
        answer = create_step({"name": f"{name}-wait", "async": True}, lambda v: None)(n)
        return WorkflowResponse(create_step(f"{name}-tag-{suffix}", lambda a: f"{a}-{suffix}")(answer))
    return create_workflow({"name": name, "version": version, "retention_time": 3600, **options}, composer)


def one_step(name: str, version: str, suffix: str, **options: Any) -> Any:
    return create_workflow({"name": name, "version": version, "retention_time": 3600, **options},
                           lambda n: WorkflowResponse(create_step(f"{name}-{suffix}", lambda v: f"{v}-{suffix}")(n)))


# -- definitions and the registry ---------------------------------------------------------------------


@pytest.mark.parametrize(("value", "hint"), [(2, 'write version="2"'), ("", "non-empty"), ("a:b", 'without ":"'),
                                             (None, "non-empty")])
def test_a_version_is_a_non_empty_string(wf_name: str, value: Any, hint: str) -> None:
    with pytest.raises(StepworkError) as caught:
        create_workflow({"name": wf_name, "version": value}, lambda: None)
    assert caught.value.type == "invalid_data" and hint in caught.value.message


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_max_concurrency_is_a_whole_number_of_at_least_one(wf_name: str, value: Any) -> None:
    with pytest.raises(StepworkError, match="max_concurrency"):
        create_workflow({"name": wf_name, "max_concurrency": value}, lambda: None)


def test_versions_of_one_name_are_registered_side_by_side(wf_name: str) -> None:
    v1 = one_step(wf_name, "1", "one")
    v2 = one_step(wf_name, "2", "two")
    assert workflow_versions(wf_name) == {"1": v1, "2": v2}
    assert get_workflow(wf_name) is v2  # the one defined last
    assert get_workflow(wf_name, "1") is v1
    assert one_step(wf_name, "1", "one") is not None  # the same graph again: allowed (a reload)
    with pytest.raises(StepworkError) as caught:
        one_step(wf_name, "1", "changed")  # another graph under a version that exists
    assert caught.value.type == "duplicate_error" and 'version "1"' in caught.value.message
    with pytest.raises(StepworkError, match='no version "3"'):
        get_workflow(wf_name, "3")
    unregister_workflow(wf_name, "2")
    assert get_workflow(wf_name).options.version == "1"


async def test_run_starts_the_version_defined_last_or_the_one_named(database_url: str, wf_name: str) -> None:
    one_step(wf_name, "1", "one")
    two = one_step(wf_name, "2", "two")
    async with WorkflowEngine(database_url) as engine:
        assert (await engine.run(wf_name, "x")).result == "x-two"
        assert (await engine.run(wf_name, "x", version="1")).result == "x-one"
        assert (await engine.run(two, "x", version="1")).result == "x-one"  # the named version of its name
        with pytest.raises(StepworkError, match='no version "9"'):
            await engine.run(wf_name, "x", version="9")


# -- a stored execution goes on on its own version ---------------------------------------------------------


async def test_an_execution_goes_on_on_the_version_it_started_with(database_url: str, wf_name: str) -> None:
    two_steps(wf_name, "1", "one")
    async with WorkflowEngine(database_url) as engine:
        await engine.run(wf_name, "a", transaction_id="old")
        two_steps(wf_name, "2", "two")  # deployed while "old" waits; both versions defined here
        await engine.run(wf_name, "b", transaction_id="new")
        done_old = await engine.set_step_success(
            {"workflow_id": wf_name, "transaction_id": "old", "step_id": f"{wf_name}-wait", "action": "invoke"}, "A")
        done_new = await engine.set_step_success(
            {"workflow_id": wf_name, "transaction_id": "new", "step_id": f"{wf_name}-wait", "action": "invoke"}, "B")
        assert (done_old.result, done_new.result) == ("A-one", "B-two")
        assert await engine.list_workflow_executions({"stale": True, "workflow_id": wf_name}) == []


async def test_without_its_version_an_execution_is_stale_and_left_as_it_is(database_url: str, wf_name: str) -> None:
    two_steps(wf_name, "1", "one")
    key = {"workflow_id": wf_name, "transaction_id": "old", "step_id": f"{wf_name}-wait", "action": "invoke"}
    async with WorkflowEngine(database_url) as engine:
        await engine.run(wf_name, "a", transaction_id="old")
        unregister_workflow(wf_name, "1")
        two_steps(wf_name, "2", "two")  # the new code only: nothing here has version 1
        await engine.run(wf_name, "b", transaction_id="new")
        with pytest.raises(StepworkError) as caught:
            await engine.set_step_success(key, "A")
        assert caught.value.type == "conflict"
        assert "stale=True" in caught.value.message and "version" in caught.value.message
        with pytest.raises(StepworkError, match="does not have"):
            await engine.cancel(wf_name, "old")
        stale = await engine.list_workflow_executions({"stale": True, "workflow_id": wf_name})
        assert [e.transaction_id for e in stale] == ["old"]
        not_stale = await engine.list_workflow_executions({"stale": False, "workflow_id": wf_name})
        assert [e.transaction_id for e in not_stale] == ["new"]
        assert (await engine.retrieve_workflow_execution(stale[0].id)).state == "invoking"  # untouched
        # The old code is deployed again beside the new: it goes on, on its own graph.
        two_steps(wf_name, "1", "one")
        assert await engine.list_workflow_executions({"stale": True, "workflow_id": wf_name}) == []
        assert (await engine.set_step_success(key, "A")).result == "A-one"


async def test_the_stale_filter_is_checked(database_url: str) -> None:
    async with WorkflowEngine(database_url) as engine:
        with pytest.raises(StepworkError, match='"stale" takes True or False'):
            await engine.list_workflow_executions({"stale": "yes"})


async def test_a_queued_run_waits_for_an_engine_that_has_its_version(shared_url: str, wf_name: str) -> None:
    one_step(wf_name, "1", "one")
    async with WorkflowEngine(shared_url, poll_interval=0.05, concurrency=0) as queuer:
        await queuer.run(wf_name, "a", transaction_id="q-old", queue=True)
        unregister_workflow(wf_name, "1")
        one_step(wf_name, "2", "two")
        async with WorkflowEngine(shared_url, poll_interval=0.05, concurrency=4) as worker:
            await worker.run(wf_name, "b", transaction_id="q-new", queue=True)
            await until_finished(worker, wf_name, 1)
            await asyncio.sleep(0.3)  # several polls: the old one is not taken, nor run on version 2
            assert await states(worker, wf_name) == {"q-old": "not_started", "q-new": "done"}
            stale = await worker.list_workflow_executions({"stale": True, "workflow_id": wf_name})
            assert [e.transaction_id for e in stale] == ["q-old"]
            one_step(wf_name, "1", "one")  # a worker with the old version comes
            await until_finished(worker, wf_name, 2)
            [old] = await worker.list_workflow_executions({"transaction_id": "q-old"})
            assert old.state == "done" and old.context["data"]["invoke"] == {f"{wf_name}-one": "a-one"}


# -- worker health -----------------------------------------------------------------------------------------


async def test_engines_show_as_workers_with_their_versions(shared_url: str, wf_name: str) -> None:
    two_steps(wf_name, "7", "seven")
    clock = FakeClock()
    async with WorkflowEngine(shared_url, concurrency=3, lease_ttl=30, clock=clock) as engine:
        await engine.run(wf_name, "a", transaction_id="w-1")  # waits: no lease held while it waits
        other = WorkflowEngine(shared_url, concurrency=0, lease_ttl=30, clock=clock)
        await other.start()
        await other.stop()
        workers = {w["id"]: w for w in await engine.list_workers()}
        me, them = workers[engine.owner], workers[other.owner]
        assert me["status"] == "alive" and me["concurrency"] == 3 and me["lease_ttl"] == 30
        assert {"workflow_id": wf_name, "version": "7"} in me["workflows"]
        assert me["executions_owned"] == 0 and me["last_heartbeat_at"].endswith("Z")
        assert them["status"] == "stopped" and them["stopped_at"] is not None
        clock.advance(31)  # silent for longer than a lease_ttl: gone
        await engine.store.heartbeat(WorkerRow("ghost", "elsewhere", 1, 1, 30.0, [], clock.time() - 100,
                                               clock.time() - 31))
        statuses = {w["id"]: w["status"] for w in await engine.list_workers()}
        assert statuses["ghost"] == "gone"
        clock.advance(86_400)  # a day later the cleanup job removes the rows of silent workers
        await engine.cleanup_expired_executions()
        left = {w["id"] for w in await engine.list_workers()}
        assert "ghost" not in left and other.owner not in left


# -- per-workflow concurrency limits -------------------------------------------------------------------------


async def test_max_concurrency_bounds_the_runs_of_a_workflow_across_engines(shared_url: str, wf_name: str) -> None:
    running = 0
    most = 0

    async def work(n: int) -> StepResponse[int, None]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        return StepResponse(n)

    create_workflow({"name": wf_name, "retention_time": 3600, "max_concurrency": 2},
                    lambda n: WorkflowResponse(create_step(f"{wf_name}-work", work)(n)))
    free = one_step(f"{wf_name}-free", "1", "free")
    async with (WorkflowEngine(shared_url, poll_interval=0.05, concurrency=0) as queuer,
                WorkflowEngine(shared_url, poll_interval=0.05, concurrency=5) as a,
                WorkflowEngine(shared_url, poll_interval=0.05, concurrency=5) as b):
        for n in range(12):
            await queuer.run(wf_name, n, transaction_id=f"m-{n:02}", queue=True)
            await queuer.run(free, n, transaction_id=f"f-{n:02}", queue=True)
        assert set((await until_finished(queuer, wf_name, 12)).values()) == {"done"}
        assert set((await until_finished(queuer, f"{wf_name}-free", 12)).values()) == {"done"}
    assert most == 2  # never more than its limit at once, though 10 slots were free
    assert a.queue.claimed + b.queue.claimed == 24
