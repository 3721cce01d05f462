"""Modules' Alembic migrations: applied from scratch, upgraded by a later revision, one version table each."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from stepwork import StepworkError
from stepwork.app import App, Module
from tests.app.brand_module import MIGRATIONS, brand_module, product_module
from tests.conftest import BACKENDS, throwaway_pg_database

APP_BACKENDS = [b for b in ("sqlite", "postgres") if ("sqlite-file" if b == "sqlite" else b) in BACKENDS]


@pytest.fixture(params=APP_BACKENDS)
def app_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file or a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.db'}"
        return
    with throwaway_pg_database("stepwork_app") as url:
        yield url


def _columns(app: App, table: str) -> list[str]:
    return [c["name"] for c in sa.inspect(app.sqlalchemy_engine).get_columns(table)]


def _version(app: App, module: str) -> list[str]:
    with app.sqlalchemy_engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.text(f"SELECT version_num FROM alembic_version_{module}"))]


async def test_migrate_from_scratch_then_upgrade_with_a_new_revision(app_url: str, tmp_path: Path) -> None:
    """migrate() applies revision 0001 on an empty database; after 0002 ships, it applies only 0002."""
    versions = tmp_path / "versions"
    versions.mkdir()
    shutil.copy(MIGRATIONS / "0001_create_brand.py", versions)
    first = App([brand_module(versions), product_module], app_url, auto_migrate=False)
    assert await first.migrate() == {"brand": ["0001"], "product": []}
    tables = set(sa.inspect(first.sqlalchemy_engine).get_table_names())
    assert {"brand", "product", "alembic_version_brand", "workflow_execution"} <= tables
    assert "alembic_version" not in tables and "alembic_version_product" not in tables
    assert _columns(first, "brand") == ["id", "name"]
    first.query.close()

    shutil.copy(MIGRATIONS / "0002_brand_rank.py", versions)
    second = App([brand_module(versions), product_module], app_url, auto_migrate=False)
    assert await second.migrate() == {"brand": ["0002"], "product": []}
    assert _columns(second, "brand") == ["id", "name", "rank"]
    assert _version(second, "brand") == ["0002"]
    assert await second.migrate() == {"brand": ["0002"], "product": []}  # nothing left to apply
    second.query.close()


async def test_each_module_has_its_own_version_table(app_url: str, tmp_path: Path) -> None:
    """Two modules with Alembic revisions upgrade independently, each recorded in alembic_version_<name>."""
    other = tmp_path / "tag_versions"
    other.mkdir()
    (other / "0001_tag.py").write_text(
        'import sqlalchemy as sa\nfrom alembic import op\nrevision = "t1"\ndown_revision = None\n'
        'def upgrade():\n    op.create_table("tag", sa.Column("id", sa.String(10), primary_key=True))\n')
    app = App([brand_module(), Module("tag", object(), migrations=other)], app_url, auto_migrate=False)
    assert await app.migrate() == {"brand": ["0002"], "tag": ["t1"]}
    assert _version(app, "brand") == ["0002"] and _version(app, "tag") == ["t1"]
    app.query.close()


async def test_a_failing_revision_names_its_module(tmp_path: Path) -> None:
    """A revision that fails raises database_error naming the module."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "0001_x.py").write_text('from alembic import op\nrevision = "x1"\ndown_revision = None\n'
                                      'def upgrade():\n    op.execute("CREATE TABLE")\n')
    app = App([Module("broken", object(), migrations=broken)], f"sqlite:///{tmp_path / 'b.db'}", auto_migrate=False)
    with pytest.raises(StepworkError, match='Migrating module "broken" failed'):
        await app.migrate()


def test_module_arguments_are_checked(tmp_path: Path) -> None:
    """A bad module name or a migrations path that is not a directory is invalid_data."""
    with pytest.raises(StepworkError, match="lower case"):
        Module("Brand Module", object())
    with pytest.raises(StepworkError, match="not a directory"):
        Module("brand", object(), migrations=tmp_path / "missing")



def _migrate_in_a_process(url: str, start: Any) -> dict[str, list[str]]:
    from stepwork.app.migrations import upgrade_modules

    app = App([brand_module(), product_module], url, auto_migrate=False)
    with app.sqlalchemy_engine.connect():
        pass  # connected: the processes now start migrating within a millisecond of each other
    start.wait()
    try:
        return upgrade_modules(app.sqlalchemy_engine, app.modules)
    finally:
        app.query.close()


@pytest.mark.skipif("postgres" not in APP_BACKENDS, reason="PostgreSQL left out by STEPWORK_TEST_BACKENDS")
async def test_workers_starting_together_migrate_one_at_a_time() -> None:
    """Processes migrating one PostgreSQL database at once (the workers of a deploy starting
    together) all succeed: each module's migration is serialized, the later ones find it done;
    so do two applications migrating at once in one process."""
    import asyncio
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with throwaway_pg_database("stepwork_app") as url:
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, ProcessPoolExecutor(4, mp_context=context) as pool:
            start = manager.Barrier(4)
            results = list(pool.map(_migrate_in_a_process, [url] * 4, [start] * 4))
        assert results == [{"brand": ["0002"], "product": []}] * 4
        apps = [App([brand_module(), product_module], url, auto_migrate=False) for _ in range(2)]
        assert await asyncio.gather(*(app.migrate() for app in apps)) == [{"brand": ["0002"], "product": []}] * 2
        assert _version(apps[0], "brand") == ["0002"]
        assert "product" in sa.inspect(apps[0].sqlalchemy_engine).get_table_names()
        apps[0].query.close()
