"""Fixtures of the multi-process harness: a PostgreSQL server of this module's own (restartable), a
fresh database on it per test, and the fleet of worker processes (stopped at the end of the test)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import throwaway_pg_database
from tests.workers.harness import Fleet, PrivatePostgres, private_postgres_unavailable


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres | None]:
    """A throwaway PostgreSQL server (``None`` when this machine cannot run one: the scenarios that
    do not restart the server then use the shared one)."""
    if private_postgres_unavailable() is not None:
        yield None
        return
    server = PrivatePostgres().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def scale_out_url(private_postgres: PrivatePostgres | None) -> Iterator[str]:
    """A new database for one scenario: on the private server if there is one, else on the shared one."""
    if private_postgres is None:
        with throwaway_pg_database("stepwork_workers") as url:
            yield url
        return
    private_postgres.ensure_running()  # a failed restart scenario must not take the next ones down
    yield private_postgres.create_database(f"scale_out_{secrets.token_hex(4)}")


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    return tmp_path / "fleet"


@pytest.fixture
def make_fleet(scale_out_url: str, fleet_dir: Path) -> Iterator[object]:
    fleets: list[Fleet] = []

    def make(**options: object) -> Fleet:
        fleet = Fleet(scale_out_url, fleet_dir, **options)  # type: ignore[arg-type]
        fleets.append(fleet)
        return fleet
    yield make
    for fleet in fleets:
        fleet.close()
