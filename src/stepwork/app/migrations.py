"""Modules' schema migrations: Alembic revisions, one version table per module.

No ``env.py`` or ``alembic.ini`` is needed: the application runs each module's revision files
(``Module.migrations``) on its own connection, recording the revision in
``alembic_version_<module>``, so modules upgrade independently in one database. A module without
migrations gets its models' tables created as declared (``CREATE TABLE IF NOT EXISTS``).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from stepwork.app.module import Module
from stepwork.errors import StepworkError

__all__ = ["current_revisions", "upgrade_modules"]


def _script(module: Module) -> tuple[Config, ScriptDirectory]:
    config = Config()
    config.set_main_option("path_separator", "os")  # a directory name may hold spaces or commas
    config.set_main_option("script_location", str(module.migrations))
    config.set_main_option("version_locations", str(module.migrations))
    return config, ScriptDirectory.from_config(config)


def upgrade_modules(engine: sa.Engine, modules: Iterable[Module], revision: str = "heads") -> dict[str, list[str]]:
    """Upgrade every module (in order) to ``revision``; ``{module: its revisions now}``."""
    done: dict[str, list[str]] = {}
    for module in modules:
        try:
            done[module.name] = _upgrade(engine, module, revision)
        except StepworkError:
            raise
        except Exception as exc:
            raise StepworkError(StepworkError.Types.DB_ERROR,
                                f'Migrating module "{module.name}" failed: {exc.__class__.__name__}: {exc}') from exc
    return done


# Alembic's EnvironmentContext installs itself as the process-wide ``alembic.context``: two threads
# running migrations at once would see each other's, so a process runs one at a time.
_ALEMBIC = threading.Lock()


def _serialize(conn: sa.Connection, module: Module) -> None:
    """Hold a per-module lock until the transaction ends, so that workers starting together on one
    PostgreSQL database migrate one at a time (the second finds the work done) instead of racing
    on the version table or ``CREATE TABLE``. SQLite serializes writers by itself."""
    if conn.dialect.name == "postgresql":
        key = zlib.crc32(f"stepwork.module.{module.name}".encode())  # stable across processes, fits a bigint
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _upgrade(engine: sa.Engine, module: Module, revision: str) -> list[str]:
    if module.migrations is None:
        tables = [model.__table__ for model in module.models if hasattr(model, "__table__")]
        if tables:
            with engine.begin() as conn:
                _serialize(conn, module)
                tables[0].metadata.create_all(conn, tables=tables, checkfirst=True)
        return []
    config, script = _script(module)

    def upgrade(rev: Any, context: Any) -> Any:
        return script._upgrade_revs(revision, rev)

    with _ALEMBIC, engine.begin() as conn, \
            EnvironmentContext(config, script, fn=upgrade, destination_rev=revision) as env:
        _serialize(conn, module)
        env.configure(connection=conn, version_table=module.version_table)
        with env.begin_transaction():
            env.run_migrations()
    return current_revisions(engine, module)


def current_revisions(engine: sa.Engine, module: Module) -> list[str]:
    """The revisions ``module``'s version table records (empty before its first migration)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": module.version_table})
        return sorted(context.get_current_heads())
