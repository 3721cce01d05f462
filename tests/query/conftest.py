"""A query over a seeded database: a SQLite file, and a throwaway PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from stepwork.query import Query
from tests.conftest import BACKENDS, throwaway_pg_database
from tests.query.models import BRANDS, PRODUCTS, Base, Brand, Product

QUERY_BACKENDS = [b for b in ("sqlite", "postgres") if ("sqlite-file" if b == "sqlite" else b) in BACKENDS]


@pytest.fixture(scope="module", params=QUERY_BACKENDS)
def seeded_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a database holding the brands and products of tests/query/models.py."""
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('query')) / 'app.db'}"
        _seed(url)
        yield url
        return
    with throwaway_pg_database("stepwork_query") as url:
        _seed(url)
        yield url


def _seed(url: str) -> None:
    seeder = Query(url)
    engine = seeder.sqlalchemy_engine
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(Brand), BRANDS)
        conn.execute(sa.insert(Product), PRODUCTS)
    seeder.close()


@pytest.fixture
def query(seeded_url: str) -> Iterator[Query]:
    """A query with the brand and product models, on the seeded database."""
    q = Query(seeded_url, models=[Brand, Product])
    yield q
    q.close()
