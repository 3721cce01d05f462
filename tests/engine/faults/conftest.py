"""Fixtures of the fault-injection tests (the machinery is in :mod:`tests.engine.faults.harness`).

The PostgreSQL database of these tests is one of each test's own, dropped at its end: a fault that
strands an execution must not leave it in the session's shared database, where the engines of later
tests (in which this package's worker workflows are registered) would try to recover it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, throwaway_pg_database
from tests.engine.faults.harness import DIR_ENV, Workers

# Backends several processes can share (a private in-memory SQLite database cannot be).
SHARED_BACKENDS = [b for b in BACKENDS if b != "sqlite-memory"]


@pytest.fixture
def private_pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped (with its connections) at the end."""
    with throwaway_pg_database("stepwork_faults") as url:
        yield url


def _url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite-memory":
        return "sqlite://"
    if backend == "sqlite-file":
        return f"sqlite:///{tmp_path / 'stepwork.db'}"
    if backend == "postgres":
        return str(request.getfixturevalue("private_pg_url"))
    raise ValueError(f"unknown backend {backend!r} in STEPWORK_TEST_BACKENDS")


@pytest.fixture(params=BACKENDS)
def own_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every backend (as ``database_url``), with a PostgreSQL database of the test's own."""
    return _url(request.param, request, tmp_path)


@pytest.fixture(params=SHARED_BACKENDS)
def shared_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database several processes share: a SQLite file or a PostgreSQL database, the test's own."""
    return _url(request.param, request, tmp_path)


@pytest.fixture
def fault_dir_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's directory for invocation logs and marker files (also set in this process's
    environment, so steps run here log there too)."""
    directory = tmp_path / "faults"
    directory.mkdir()
    monkeypatch.setenv(DIR_ENV, str(directory))
    return directory


@pytest.fixture
def workers(fault_dir_path: Path) -> Iterator[Workers]:
    """Start worker subprocesses; those left are continued and killed at the end of the test."""
    w = Workers(fault_dir_path)
    yield w
    w.close()
