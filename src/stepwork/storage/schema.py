"""The stored schema, defined once for SQLite and PostgreSQL (SQLAlchemy Core).

:mod:`stepwork.storage.migrations` compiles these tables and indexes into each dialect's DDL; the
stores' statements are hand-written SQL on the drivers and name the same tables and columns. The
names are those every released version created, so existing databases stay readable: change
them only with a migration.

What differs by dialect is only the column types: times are ``REAL`` epoch seconds on SQLite and
``TIMESTAMPTZ`` on PostgreSQL, ``retention_time`` is ``DOUBLE PRECISION`` there, and the fencing
``version`` a ``BIGINT``. JSON documents are ``TEXT`` on both (``\\u0000`` and integers of any
size round-trip exactly).

This module imports SQLAlchemy, so it is imported only when a database needs migrating.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from stepwork.storage.query import SEARCH_EXPRESSION
from stepwork.storage.rows import FINISHED
from stepwork.storage.search import trigram_index

__all__ = ["API_KEYS", "DEFINITIONS", "EXECUTIONS", "METADATA", "MIGRATIONS_TABLE", "POSTGRES_SEARCH_INDEX",
           "STEPS", "TIMERS", "WORKERS"]

METADATA = sa.MetaData()

# Epoch seconds on SQLite; a timestamp on PostgreSQL (the PostgreSQL store converts on the way).
_TIME: sa.types.TypeEngine[Any] = sa.REAL().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
_SECONDS: sa.types.TypeEngine[Any] = sa.REAL().with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")
_VERSION: sa.types.TypeEngine[Any] = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _text(name: str, **kwargs: Any) -> sa.Column[Any]:
    return sa.Column(name, sa.Text, **kwargs)


def _key() -> list[sa.Column[Any]]:
    return [_text("workflow_id", nullable=False), _text("transaction_id", nullable=False),
            _text("run_id", nullable=False)]


EXECUTIONS = sa.Table(
    "workflow_execution", METADATA,
    _text("id", nullable=False),
    *_key(),
    _text("execution"),
    _text("context"),
    _text("state", nullable=False),
    sa.Column("retention_time", _SECONDS),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
    sa.Column("deleted_at", _TIME),
    sa.Column("version", _VERSION, nullable=False, server_default=sa.text("0")),
    _text("lease_owner"),
    sa.Column("lease_expires_at", _TIME),
    sa.Column("expires_at", _TIME),  # finish time + retention_time: what retention deletes by
    _text("progress", nullable=False, server_default="{}"),
    _text("definition_hash"),  # the stored template of the static record parts (version 2)
    # Version 7 (queued runs): when the run was queued for any worker to claim (NULL once claimed, and
    # for runs started in the caller's process), and its priority (higher is claimed first).
    sa.Column("queued_at", _TIME),
    sa.Column("priority", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.PrimaryKeyConstraint("workflow_id", "transaction_id", "run_id"),
)

STEPS = sa.Table(
    "workflow_execution_step", METADATA,
    *_key(),
    sa.Column("step_index", sa.Integer, nullable=False),
    _text("record", nullable=False),
    _text("output"),
    _text("compensate_input"),
    _text("compensate_output"),
    sa.PrimaryKeyConstraint("workflow_id", "transaction_id", "run_id", "step_index"),
    # On SQLite the rows live in the primary key's B-tree: a checkpoint's step upsert then changes
    # one B-tree instead of a table and its key index (~10 µs less per step boundary, measured).
    sqlite_with_rowid=False,
)

# The single-column keys below are nullable as the first versions declared them (``id TEXT PRIMARY
# KEY``, which SQLite lets hold NULL; PostgreSQL makes any key NOT NULL): NOT NULL here would make
# new databases differ from upgraded ones, and SQLite cannot add it to an existing column. The
# stores never write NULL there.
TIMERS = sa.Table(
    "workflow_timer", METADATA,
    _text("id", primary_key=True, nullable=True),
    *_key(),
    sa.Column("step_index", sa.Integer),
    _text("kind", nullable=False),
    sa.Column("due_at", _TIME, nullable=False),
    _text("data", nullable=False, server_default="{}"),
    _text("claimed_by"),
    sa.Column("claimed_until", _TIME),
)

# Version 2: the static part of every execution record (step ids, definitions, options) is stored
# once per workflow definition, content-addressed, instead of once per execution: it grows with the
# square of the step count (Medusa's step ids repeat their ancestors), and per execution it made
# every run of a long workflow write megabytes.
DEFINITIONS = sa.Table(
    "workflow_definition", METADATA,
    _text("hash", primary_key=True, nullable=True),
    _text("workflow_id", nullable=False),
    _text("template", nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
)

# Version 4: the HTTP admin API's keys (``stepwork keys create``). Only the SHA-256 of a secret is
# stored (hex, unique: what a request's key is looked up by); ``prefix`` is its first characters, shown
# in listings so people can tell keys apart. A revoked key keeps its row (``revoked_at``).
API_KEYS = sa.Table(
    "stepwork_api_key", METADATA,
    _text("id", primary_key=True),
    _text("name", nullable=False),
    _text("prefix", nullable=False),
    _text("secret_sha256", nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("revoked_at", _TIME),
    sa.Column("last_used_at", _TIME),
)

# Version 8: the engines (workers) sharing the database, each row kept by its engine's heartbeat:
# what the admin API shows as worker health, and what tells which workflow versions some running
# process has (an unfinished execution of a version none has is "stale"). ``definitions`` is a JSON
# list of ``[workflow_id, version, definition_hash]``. A stopped engine keeps its row (``stopped_at``)
# until the cleanup job removes it a day later.
WORKERS = sa.Table(
    "stepwork_worker", METADATA,
    _text("id", primary_key=True, nullable=True),
    _text("host", nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("lease_ttl", _SECONDS, nullable=False),  # it beats every third of it; silent for longer: gone
    _text("definitions", nullable=False, server_default="[]"),
    sa.Column("started_at", _TIME, nullable=False),
    sa.Column("heartbeat_at", _TIME, nullable=False),
    sa.Column("stopped_at", _TIME),
)

MIGRATIONS_TABLE = sa.Table(
    "stepwork_migrations", METADATA,
    sa.Column("version", sa.Integer, primary_key=True, nullable=True, autoincrement=False),
    sa.Column("applied_at", _TIME, nullable=False),
)


def _partial(name: str, *columns: sa.ColumnElement[Any], where: sa.ColumnElement[bool], unique: bool = False) -> None:
    """A partial index (both dialects take the same ``WHERE``); it joins its table's indexes."""
    sa.Index(name, *columns, unique=unique, sqlite_where=where, postgresql_where=where)


def _indexes() -> None:
    e, t = EXECUTIONS.c, TIMERS.c
    live = e.deleted_at.is_(None)
    # The indexes the stores' queries use, and no more: each one is written by every insert, and
    # those on state or times by every state change too (measured: a finishing write on SQLite cost
    # ~80 µs with Medusa's eleven indexes). Medusa's on (workflow_id) and (workflow_id,
    # transaction_id) are served by the primary key; its (deleted_at) index holds one value (rows are
    # never soft-deleted here), (state) is the prefix of (state, updated_at), (run_id) serves no query,
    # and retention deletes by expires_at, not by its two (retention_time, updated_at) indexes.
    _partial("idx_wfe_id", e.id, where=live)
    _partial("idx_wfe_transaction_id", e.transaction_id, where=live)
    # Listing's default order; written once per execution (created_at never changes).
    sa.Index("idx_wfe_created_at", e.created_at)
    # Version 5 (the HTTP list route, W9): listing by state, or by workflow, in created_at order reads
    # the first rows of one index range and counts from the same range. (state, created_at) replaces
    # (state, updated_at), which no query used, at the same cost: both change with the state.
    _partial("idx_wfe_state_created_at", e.state, e.created_at, where=live)
    # Written once per execution (none of its columns changes). Its trailing transaction and run ids
    # make it cover q's search (a substring of those ids or of the workflow id): SQLite scans this
    # index instead of the table's rows.
    _partial("idx_wfe_workflow_created_at", e.workflow_id, e.created_at, e.transaction_id, e.run_id, where=live)
    # One live (unfinished) run per transaction id: two concurrent starts cannot both insert.
    _partial("uq_wfe_live_transaction", e.workflow_id, e.transaction_id,
             where=sa.and_(live, e.state.not_in(FINISHED)), unique=True)
    _partial("idx_wfe_lease", e.lease_expires_at, where=e.lease_owner.is_not(None))
    _partial("idx_wfe_expires_at", e.expires_at, where=e.expires_at.is_not(None))
    # Version 7: the queue, in claiming order; only queued rows are in it (a claim takes them out).
    _partial("idx_wfe_queue", e.priority.desc(), e.queued_at, where=e.queued_at.is_not(None))
    sa.Index("idx_wft_due_at", t.due_at)
    # An execution's own timers, removed when it finishes (without it, every finish scanned them all).
    sa.Index("idx_wft_execution", t.workflow_id, t.transaction_id, t.run_id)
    sa.Index("uq_api_key_secret_sha256", API_KEYS.c.secret_sha256, unique=True)


_indexes()


# Version 5, PostgreSQL only: a trigram index for q (a case-insensitive substring of the workflow,
# transaction or run id). ``pg_trgm`` is a contrib extension: created (in ``public``) if the server
# has it and the user may; otherwise nothing is created and q scans the rows, as before. The indexed
# text is written once per execution (none of the three ids changes; the state, which q also
# matches, is a closed set compared by equality, see ``storage.query.q_states``). The PostgreSQL store
# ANDs ``SEARCH_EXPRESSION ILIKE pattern`` before q's exact condition when the index exists.
POSTGRES_SEARCH_INDEX = trigram_index(
    "'CREATE INDEX IF NOT EXISTS idx_wfe_search ON workflow_execution USING gin '\n                   "
    f"""'({SEARCH_EXPRESSION.replace("'", "''")} %I.gin_trgm_ops) '\n                   'WHERE deleted_at IS NULL'""")
