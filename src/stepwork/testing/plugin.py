"""The pytest plugin (registered as ``stepwork`` through the ``pytest11`` entry point).

Fixtures:

- ``stepwork_clock``: a :class:`~stepwork.testing.FakeClock` for the engine.
- ``stepwork_engine``: a started :class:`~stepwork.WorkflowEngine` on an in-memory store, isolated
  per test, reading time from ``stepwork_clock`` (its timers fire when the clock is advanced, not
  on their own), registered in a fresh container (``stepwork_engine.container``), with the inputs
  of every step recorded for :func:`~stepwork.testing.timeline`. When the option
  ``--stepwork-postgres-url`` (or the environment variable ``STEPWORK_TEST_POSTGRES_URL``) gives a
  PostgreSQL database, each test using it runs twice: in memory and on PostgreSQL. **That database
  is emptied of stepwork's rows before each test**: give a database meant for tests.
  Workflows defined during a test are unregistered after it.
- ``stepwork_sqlite_engine``: the same on a SQLite file in the test's temporary directory.

They serve ``async def`` tests run by pytest-asyncio (``pip install "stepwork[testing]"`` brings pytest
and pytest-asyncio). Without pytest-asyncio installed and enabled, every test using an engine fixture
fails at setup with a message saying so (see ``pytest_runtest_setup``). Plain tests can run workflows
with ``wf.run_sync(...)`` (in memory) and use ``override_steps``, ``fail_step`` and ``timeline`` there
too.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from stepwork.container import Container
from stepwork.engine.engine import WorkflowEngine
from stepwork.engine.registry import registered_workflows, unregister_workflow
from stepwork.testing.clock import FakeClock
from stepwork.testing.patching import forget_runs, recording

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the engine fixtures then say what is missing
    pytest_asyncio = None  # type: ignore[assignment]

_PG_ENV = "STEPWORK_TEST_POSTGRES_URL"
_POLL = 3600.0  # the background loop stays out of the way: the test's clock fires timers
_ENGINE_FIXTURES = frozenset({"stepwork_engine", "stepwork_sqlite_engine"})
NEEDS_ASYNCIO = ("stepwork's engine fixtures (stepwork_engine, stepwork_sqlite_engine) need pytest-asyncio, "
                 "which is not installed or not enabled (-p no:asyncio): "
                 'pip install "stepwork[testing]" (or: pip install pytest-asyncio)')


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stepwork")
    group.addoption("--stepwork-postgres-url", default=None,
                    help="also run tests using stepwork_engine on this PostgreSQL database "
                         f"(or set {_PG_ENV})")


def _postgres_url(config: pytest.Config) -> str | None:
    url = config.getoption("--stepwork-postgres-url", default=None) or os.environ.get(_PG_ENV)
    return str(url) if url else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "stepwork_engine" in metafunc.fixturenames:
        backends = ["memory"]
        if _postgres_url(metafunc.config):
            backends.append("postgresql")
        metafunc.parametrize("stepwork_backend", backends, ids=[f"stepwork-{b}" for b in backends])


@pytest.fixture
def stepwork_clock() -> FakeClock:
    """A fake wall clock: ``await stepwork_clock.advance(seconds)`` fires what became due."""
    return FakeClock()


async def _engine(url: str, clock: FakeClock, *, clear: bool = False) -> AsyncIterator[WorkflowEngine]:
    before = set(registered_workflows())
    engine = WorkflowEngine(url, clock=clock, poll_interval=_POLL, container=Container())
    try:
        with recording():
            async with engine:
                if clear:  # a shared (PostgreSQL) test database starts empty for each test
                    await engine.store.clear()
                yield engine
    finally:
        # Workflows defined during the test (a schedule, say) do not live on into the next one.
        for name in set(registered_workflows()) - before:
            unregister_workflow(name)
        forget_runs()


def _asyncio_enabled(config: pytest.Config) -> bool:
    """Whether pytest-asyncio is installed and its plugin active in this run."""
    if pytest_asyncio is None:
        return False
    from pytest_asyncio import plugin as asyncio_plugin

    return config.pluginmanager.has_plugin("asyncio") or config.pluginmanager.is_registered(asyncio_plugin)


def _missing_asyncio() -> NoReturn:
    pytest.fail(NEEDS_ASYNCIO, pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Without pytest-asyncio, a test using an engine fixture fails here, saying so, before pytest sets
    up the async fixture (or calls the async test) and fails with a message that does not say why."""
    if _ENGINE_FIXTURES.intersection(getattr(item, "fixturenames", ())) and not _asyncio_enabled(item.config):
        _missing_asyncio()


if pytest_asyncio is not None:
    @pytest_asyncio.fixture
    async def stepwork_engine(stepwork_clock: FakeClock, stepwork_backend: str,
                              request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEngine]:
        """A started engine on an in-memory store (and on PostgreSQL when configured)."""
        url = "sqlite://" if stepwork_backend == "memory" else _postgres_url(request.config)
        assert url is not None
        async for engine in _engine(url, stepwork_clock, clear=stepwork_backend != "memory"):
            yield engine

    @pytest_asyncio.fixture
    async def stepwork_sqlite_engine(stepwork_clock: FakeClock, tmp_path: Path) -> AsyncIterator[WorkflowEngine]:
        """A started engine on a SQLite file in the test's temporary directory."""
        async for engine in _engine(f"sqlite:///{tmp_path / 'stepwork.db'}", stepwork_clock):
            yield engine
else:  # pragma: no cover - pytest_runtest_setup fails the tests using them first
    # The same names and parameters (stepwork_backend is parametrized by pytest_generate_tests).
    @pytest.fixture
    def stepwork_engine(stepwork_clock: FakeClock, stepwork_backend: str) -> Any:
        _missing_asyncio()

    @pytest.fixture
    def stepwork_sqlite_engine(stepwork_clock: FakeClock, tmp_path: Path) -> Any:
        _missing_asyncio()
