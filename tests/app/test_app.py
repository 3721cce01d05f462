"""App: modules' services resolved in steps, the query over their models, events, start/stop, from_config."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwork import (
    InMemoryEventBus,
    Modules,
    StepResponse,
    StepworkError,
    WorkflowEngine,
    create_step,
    create_workflow,
    emit_event_step,
    subscriber,
    transform,
)
from stepwork.app import App, use_query_graph_step
from stepwork.events import unregister_subscriber
from stepwork.query import Query
from tests.app.brand_module import BrandService, ProductService, brand_module, product_module
from tests.app.test_migrations import app_url  # noqa: F401 - the fixture

handled: list[Any] = []


@pytest.fixture
def brand_created_subscriber() -> Iterator[list[Any]]:
    """A subscriber on brand.created, registered for this test only."""
    handled.clear()

    async def on_brand_created(event: Any, container: Any) -> None:
        handled.append((event.data, container.resolve("brand")))

    subscriber("brand.created", on_brand_created, subscriber_id="tests.app.brand-created")
    yield handled
    unregister_subscriber("tests.app.brand-created")


def _create_brand_workflow(name: str) -> Any:
    def create(inp: dict[str, Any], ctx: Any) -> StepResponse[dict[str, Any], str]:
        brand = ctx.container.resolve("brand").create(inp["id"], inp["name"])
        return StepResponse(brand, brand["id"])

    def undo(brand_id: str, ctx: Any) -> None:
        ctx.container.resolve("brand").delete(brand_id)

    create_brand = create_step("create-brand", create, undo)
    def fail_if_asked(inp: dict[str, Any]) -> None:
        if inp.get("fail"):
            raise RuntimeError("boom")

    fail = create_step("fail-if-asked", fail_if_asked)

    def compose(inp: Any) -> Any:
        brand = create_brand(inp)
        emit_event_step(transform(brand, lambda b: {"event_name": "brand.created", "data": {"id": b["id"]}}))
        fail(inp)
        return use_query_graph_step(transform(brand, lambda b: {
            "entity": "brand", "fields": ["name", "products.*"], "filters": {"id": b["id"]}}))

    return create_workflow(name, compose)


async def test_app_runs_a_workflow_with_a_modules_service_query_and_events(
        app_url: str, wf_name: str, brand_created_subscriber: list[Any]) -> None:  # noqa: F811
    """Within `async with app`, a step resolves the brand service, the query reads the brand and the
    subscriber gets brand.created; a compensated run leaves no brand and emits nothing."""
    bus = InMemoryEventBus()
    app = App([brand_module(), product_module], app_url, event_bus=bus)
    wf = _create_brand_workflow(wf_name)
    async with app:
        assert app.started and isinstance(app.resolve(Modules.WORKFLOW_ENGINE), WorkflowEngine)
        assert app.resolve(Modules.QUERY) is app.query and app.resolve(Modules.EVENT_BUS) is bus
        assert app.resolve(Modules.LOGGER) is not None
        brand = app.resolve("brand")
        assert isinstance(brand, BrandService) and app.resolve("product").brand is brand
        result = await wf(app.scope({"request_id": "r1"})).run({"id": "b1", "name": "Acme"})
        assert result.result == {"data": [{"id": "b1", "name": "Acme", "products": []}],
                                 "metadata": {"count": 1, "skip": 0, "take": None}}
        await bus.wait_idle()
        assert brand_created_subscriber == [({"id": "b1"}, brand)]

        failed = await wf(app.container).run({"id": "b2", "name": "Doomed", "fail": True}, throw_on_error=False)
        assert failed.transaction.state == "reverted"
        await bus.wait_idle()
        assert len(brand_created_subscriber) == 1
        brands = await app.query.graph("brand", ["id"])
        assert [b["id"] for b in brands["data"]] == ["b1"]
    assert not app.started and not app.engine.started


async def test_app_on_the_engines_in_memory_database(wf_name: str) -> None:
    """sqlite://: the modules' tables, the services and the query share the engine's one connection."""
    async with App([brand_module(), product_module], "sqlite://") as app:
        app.resolve("brand").create("b9", "Memory")
        rows = await app.query.graph("brand", ["name"], {"name": {"$like": "Mem%"}})
        assert rows["data"] == [{"id": "b9", "name": "Memory"}]
        assert "workflow_execution" in app.query.entities()


def test_app_rejects_bad_modules() -> None:
    """Duplicate module names and names stepwork owns are invalid_data."""
    with pytest.raises(StepworkError, match='Two modules are named "brand"'):
        App([brand_module(), brand_module()], "sqlite://")
    from stepwork.app import Module

    with pytest.raises(StepworkError, match='cannot be named "query"'):
        App([Module("query", object())], "sqlite://")
    with pytest.raises(StepworkError, match='takes "missing"'):
        App([Module("needy", lambda missing: missing)], "sqlite://")


async def test_from_config_reads_tool_stepwork(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[tool.stepwork] names the database, the modules, auto_migrate and the event bus."""
    monkeypatch.delenv("STEPWORK_DATABASE_URL", raising=False)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f"""
[tool.stepwork]
database_url = "sqlite:///{tmp_path / 'config.db'}"
modules = ["tests.app.brand_module:configured_brand_module", "tests.app.brand_module:product_module"]
auto_migrate = true
event_bus = "memory"
port = 9001
""")
    app = App.from_config(pyproject)
    assert [m.name for m in app.modules] == ["brand", "product"] and isinstance(app.event_bus, InMemoryEventBus)
    async with app:
        assert isinstance(app.resolve("product"), ProductService)
        assert (await app.query.graph("brand", ["id"]))["metadata"]["count"] == 0
    pyproject.write_text('[tool.stepwork]\nmodules = ["tests.app.brand_module:BrandService"]\n')
    with pytest.raises(StepworkError, match="is not a Module"):
        App.from_config(pyproject)
    pyproject.write_text('[tool.stepwork]\ndatabase = "x"\n')
    with pytest.raises(StepworkError, match='Unknown key "database"'):
        App.from_config(pyproject)


async def test_a_query_runs_off_the_event_loop(tmp_path: Path) -> None:
    """On a database file the query runs in a worker thread: the loop keeps running meanwhile."""
    query = Query(f"sqlite:///{tmp_path / 'q.db'}")
    assert not query.runs_inline
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    with pytest.raises(StepworkError, match="no such table"):
        await query.graph("workflow_execution")
    ticker.cancel()
    assert ticks > 0
    query.close()
