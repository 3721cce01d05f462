"""emit_event_step inside workflows (R24): released when the run ends done, dropped when it is
compensated or fails; on the in-memory path and on a stored engine (SQLite), on both buses; and the
workflow lifecycle events an attached bus publishes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from stepwork import (
    Container,
    Event,
    InMemoryEventBus,
    Modules,
    RedisEventBus,
    StepworkError,
    WorkflowEngine,
    WorkflowResponse,
    attach_event_bus,
    bind_subscribers,
    create_step,
    create_workflow,
    emit_event_step,
    subscriber,
)
from stepwork.events import unregister_subscriber

from .conftest import eventually

Bus = InMemoryEventBus | RedisEventBus


class Seen:
    """What a bus delivered to one subscriber of ``name``, and a way to know delivery caught up: a
    sentinel emitted after everything else arrives after it (same stream, one consumer, in order)."""

    def __init__(self, bus: Bus, name: str) -> None:
        self.bus = bus
        self.name = name
        self.events: list[Event] = []

    async def subscribe(self) -> None:
        await self.bus.subscribe(self.name, lambda e, c: self.events.append(e), subscriber_id="seen")
        await self.bus.start()

    async def settled(self) -> list[Any]:
        """The data delivered before a sentinel, once the sentinel arrived."""
        await self.bus.emit(self.name, "sentinel")
        await eventually(lambda: any(e.data == "sentinel" for e in self.events))
        return [e.data for e in self.events if e.data != "sentinel"]


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest, redis_buses: Callable[..., RedisEventBus]) -> AsyncIterator[Bus]:
    """Each bus in turn (the Redis one under this test's key prefix)."""
    made: Bus = InMemoryEventBus() if request.param == "memory" else redis_buses()
    yield made
    if isinstance(made, InMemoryEventBus):
        await made.stop()


def brand_workflow(name: str, undone: list[Any], store: bool = False) -> Any:
    """create brand → emit brand.created (grouped) → a step that fails when told to."""
    create = create_step(f"{name}-create", lambda data: {"id": "b1", **data}, lambda c: undone.append("brand"))

    def check(data: dict[str, Any]) -> None:
        if data.get("fail"):
            raise RuntimeError("a later step failed")
    later = create_step(f"{name}-later", check)

    def compose(data: Any) -> WorkflowResponse[Any]:
        brand = create(data)
        emit_event_step([{"event_name": f"{name}.created", "data": {"brand": brand}},
                         {"event_name": f"{name}.created", "data": "second", "metadata": {"n": 2}}])
        later(data)
        return WorkflowResponse(brand)
    return create_workflow({"name": name, "store": store}, compose)


async def _run(path: str, wf: Any, bus: Bus, data: dict[str, Any], tmp_path: Path) -> Any:
    if path == "in-memory":
        return await wf(Container({Modules.EVENT_BUS: bus})).run(data, throw_on_error=False)
    async with WorkflowEngine(f"sqlite:///{tmp_path}/engine.sqlite", poll_interval=60) as engine:
        attach_event_bus(engine, bus, lifecycle_events=None)
        return await engine.run(wf, data, throw_on_error=False)


@pytest.mark.parametrize("path", ["in-memory", "stored-sqlite"])
async def test_events_of_a_workflow_are_released_when_it_ends_done(bus: Bus, path: str, wf_name: str,
                                                                  tmp_path: Path) -> None:
    """Both events reach the subscriber after the run ended done, with the run's ids in metadata."""
    seen = Seen(bus, f"{wf_name}.created")
    await seen.subscribe()
    result = await _run(path, brand_workflow(wf_name, [], store=path != "in-memory"), bus, {"name": "Acme"},
                        tmp_path)
    assert result.transaction.state == "done"
    assert await seen.settled() == [{"brand": {"id": "b1", "name": "Acme"}}, "second"]
    first = seen.events[0]
    assert first.metadata["transaction_id"] == result.transaction.transaction_id
    assert first.metadata["workflow_id"] == wf_name and first.metadata["step_name"] == "emit-event-step"
    assert seen.events[1].metadata["n"] == 2
    assert first.metadata["event_group_id"] == seen.events[1].metadata["event_group_id"]


@pytest.mark.parametrize("path", ["in-memory", "stored-sqlite"])
async def test_events_of_a_compensated_workflow_are_never_published(bus: Bus, path: str, wf_name: str,
                                                                   tmp_path: Path) -> None:
    """R24: the event was emitted, then a later step failed: compensation ran and nothing was published."""
    seen = Seen(bus, f"{wf_name}.created")
    await seen.subscribe()
    undone: list[Any] = []
    result = await _run(path, brand_workflow(wf_name, undone, store=path != "in-memory"), bus,
                        {"name": "Acme", "fail": True}, tmp_path)
    assert result.transaction.state == "reverted" and undone == ["brand"]
    assert await seen.settled() == []
    group_id = result.transaction.execution["metadata"]["eventGroupId"]
    held = bus.grouped_events(group_id)
    assert (await held if asyncio.iscoroutine(held) else held) == []  # dropped, not left behind


async def test_a_run_that_waits_releases_its_events_when_completed_later(wf_name: str, tmp_path: Path) -> None:
    """Events emitted before an async step are held while it waits, released by set_step_success."""
    bus = InMemoryEventBus()
    seen = Seen(bus, f"{wf_name}.created")
    await seen.subscribe()
    wait = create_step({"name": f"{wf_name}-wait", "async": True}, lambda v: None)
    wf = create_workflow({"name": wf_name, "store": True}, lambda data: (
        emit_event_step({"event_name": f"{wf_name}.created", "data": data}), wait(data))[-1])
    async with WorkflowEngine(f"sqlite:///{tmp_path}/engine.sqlite", poll_interval=60) as engine:
        attach_event_bus(engine, bus, lifecycle_events=None)
        first = await engine.run(wf, {"n": 1}, transaction_id="t1")
        assert first.transaction.state == "invoking"
        await bus.wait_idle()
        assert seen.events == []
        done = await engine.set_step_success(f"{wf_name}:t1:{wf_name}-wait:invoke", "ok")
        assert done.transaction.state == "done"
    assert await seen.settled() == [{"n": 1}]


async def test_a_nested_workflow_s_events_follow_its_parent(wf_name: str) -> None:
    """A child emits in the parent's group: nothing is released when the child ends, and the parent's
    end decides (released once when done, dropped when it is compensated)."""
    bus = InMemoryEventBus()
    seen = Seen(bus, f"{wf_name}.child")
    await seen.subscribe()
    child = create_workflow(f"{wf_name}-child", lambda data: WorkflowResponse(
        emit_event_step({"event_name": f"{wf_name}.child", "data": data})))

    def fail_if(data: dict[str, Any]) -> None:
        if data["fail"]:
            raise RuntimeError("parent fails after its child")
    after = create_step(f"{wf_name}-after", fail_if)

    def compose(data: Any) -> WorkflowResponse[Any]:
        child.run_as_step(data)
        after(data)
        return WorkflowResponse(None)
    parent = create_workflow(f"{wf_name}-parent", compose)
    container = Container({Modules.EVENT_BUS: bus})
    failed = await parent(container).run({"fail": True}, throw_on_error=False)
    assert failed.transaction.state == "reverted"
    ok = await parent(container).run({"fail": False})
    assert ok.transaction.state == "done"
    assert await seen.settled() == [{"fail": False}]


async def test_subscribers_registered_with_the_decorator_get_the_app_container(wf_name: str) -> None:
    """@subscriber handlers bound with bind_subscribers receive (event, container)."""
    got: list[tuple[Any, Any]] = []

    @subscriber(f"{wf_name}.created", subscriber_id=f"{wf_name}-handler")
    async def on_created(event: Event, container: Container) -> None:
        got.append((event.data, container.resolve("greeting")))

    try:
        bus = InMemoryEventBus()
        container = Container({"greeting": "hello", Modules.EVENT_BUS: bus})
        assert await bind_subscribers(bus, container, events=[f"{wf_name}.created"]) == [f"{wf_name}-handler"]
        wf = create_workflow(wf_name, lambda data: WorkflowResponse(
            emit_event_step({"event_name": f"{wf_name}.created", "data": data})))
        await wf(container).run({"id": 1})
        await bus.wait_idle()
        assert got == [({"id": 1}, "hello")]
    finally:
        unregister_subscriber(on_created)


async def test_emit_event_step_without_a_bus_or_with_bad_input_fails_clearly(wf_name: str) -> None:
    """No bus registered: a not_found error saying how to register one; a malformed event: invalid_data."""
    wf = create_workflow(wf_name, lambda data: WorkflowResponse(emit_event_step(data)))
    with pytest.raises(StepworkError, match="no event bus is registered"):
        await wf().run({"event_name": "x", "data": 1})
    with pytest.raises(StepworkError, match="emit_event_step takes"):
        await wf(Container({Modules.EVENT_BUS: InMemoryEventBus()})).run({"name": "x"})


async def test_an_attached_bus_publishes_the_workflow_lifecycle_events(bus: Bus, wf_name: str,
                                                                       tmp_path: Path) -> None:
    """workflow.begin and workflow.finish (state, errors) for a done and a reverted run; step events
    too with lifecycle_events="all"."""
    finished = Seen(bus, "workflow.finish")
    await finished.subscribe()
    begun: list[Event] = []
    steps: list[Event] = []
    await bus.subscribe("workflow.begin", lambda e, c: begun.append(e), subscriber_id="begun")
    await bus.subscribe("workflow.step_success", lambda e, c: steps.append(e), subscriber_id="steps")
    wf = brand_workflow(wf_name, [], store=True)
    async with WorkflowEngine(f"sqlite:///{tmp_path}/engine.sqlite", poll_interval=60) as engine:
        attach_event_bus(engine, bus, lifecycle_events="all")
        ok = await engine.run(wf, {"name": "Acme"}, transaction_id="ok")
        await engine.run(wf, {"name": "Acme", "fail": True}, transaction_id="bad", throw_on_error=False)
        assert ok.transaction.state == "done"
    finishes = await finished.settled()
    assert [(d["transaction_id"], d["state"]) for d in finishes] == [("ok", "done"), ("bad", "reverted")]
    assert finishes[1]["errors"][0]["error"]["message"] == "a later step failed"
    await eventually(lambda: len(begun) == 2 and len(steps) >= 3)
    assert {e.data["transaction_id"] for e in begun} == {"ok", "bad"}
    assert begun[0].data["workflow_id"] == wf_name
