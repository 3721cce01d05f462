"""Versioned schema migrations, per dialect. A store applies the pending ones when it opens.

Each migration is a list of statements; the applied versions are recorded in
``stepwork_migrations``. Add a migration by appending a version, never by editing an applied one.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

_FINISHED = "('done', 'failed', 'reverted')"


def _common_indexes() -> list[str]:
    # Medusa's indexes on workflow_execution (all partial on deleted_at IS NULL), plus ours. Medusa's
    # indexes on (workflow_id) and (workflow_id, transaction_id) are left out: the primary key
    # (workflow_id, transaction_id, run_id) serves both, and every extra index costs each write.
    live = "WHERE deleted_at IS NULL"
    return [
        f"CREATE INDEX IF NOT EXISTS idx_wfe_deleted_at ON workflow_execution (deleted_at) {live}",
        f"CREATE INDEX IF NOT EXISTS idx_wfe_id ON workflow_execution (id) {live}",
        f"CREATE INDEX IF NOT EXISTS idx_wfe_transaction_id ON workflow_execution (transaction_id) {live}",
        f"CREATE INDEX IF NOT EXISTS idx_wfe_state ON workflow_execution (state) {live}",
        f"CREATE INDEX IF NOT EXISTS idx_wfe_run_id ON workflow_execution (run_id) {live}",
        f"CREATE INDEX IF NOT EXISTS idx_wfe_state_updated_at ON workflow_execution (state, updated_at) {live}",
        "CREATE INDEX IF NOT EXISTS idx_wfe_retention_time_updated_at_state ON workflow_execution "
        f"(retention_time, updated_at, state) {live} AND retention_time IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS idx_wfe_updated_at_retention_time ON workflow_execution "
        f"(updated_at, retention_time) {live} AND retention_time IS NOT NULL AND state IN {_FINISHED}",
        # One live (unfinished) run per transaction id: two concurrent starts cannot both insert.
        "CREATE UNIQUE INDEX IF NOT EXISTS uq_wfe_live_transaction ON workflow_execution "
        f"(workflow_id, transaction_id) WHERE deleted_at IS NULL AND state NOT IN {_FINISHED}",
        "CREATE INDEX IF NOT EXISTS idx_wfe_lease ON workflow_execution (lease_expires_at) "
        "WHERE lease_owner IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS idx_wfe_expires_at ON workflow_execution (expires_at) "
        "WHERE expires_at IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS idx_wft_due_at ON workflow_timer (due_at)",
    ]


_SQLITE_V1 = [
    """CREATE TABLE IF NOT EXISTS workflow_execution (
        id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        execution TEXT,
        context TEXT,
        state TEXT NOT NULL,
        retention_time REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        deleted_at REAL,
        version INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_expires_at REAL,
        expires_at REAL,
        progress TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (workflow_id, transaction_id, run_id)
    )""",
    """CREATE TABLE IF NOT EXISTS workflow_execution_step (
        workflow_id TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        step_index INTEGER NOT NULL,
        record TEXT NOT NULL,
        output TEXT,
        compensate_input TEXT,
        compensate_output TEXT,
        PRIMARY KEY (workflow_id, transaction_id, run_id, step_index)
    )""",
    """CREATE TABLE IF NOT EXISTS workflow_timer (
        id TEXT PRIMARY KEY,
        workflow_id TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        step_index INTEGER,
        kind TEXT NOT NULL,
        due_at REAL NOT NULL,
        data TEXT NOT NULL DEFAULT '{}',
        claimed_by TEXT,
        claimed_until REAL
    )""",
    *_common_indexes(),
]

_POSTGRES_V1 = [
    """CREATE TABLE IF NOT EXISTS workflow_execution (
        id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        execution TEXT,
        context TEXT,
        state TEXT NOT NULL,
        retention_time DOUBLE PRECISION,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        deleted_at TIMESTAMPTZ,
        version BIGINT NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_expires_at TIMESTAMPTZ,
        expires_at TIMESTAMPTZ,
        progress TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (workflow_id, transaction_id, run_id)
    )""",
    """CREATE TABLE IF NOT EXISTS workflow_execution_step (
        workflow_id TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        step_index INTEGER NOT NULL,
        record TEXT NOT NULL,
        output TEXT,
        compensate_input TEXT,
        compensate_output TEXT,
        PRIMARY KEY (workflow_id, transaction_id, run_id, step_index)
    )""",
    """CREATE TABLE IF NOT EXISTS workflow_timer (
        id TEXT PRIMARY KEY,
        workflow_id TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        step_index INTEGER,
        kind TEXT NOT NULL,
        due_at TIMESTAMPTZ NOT NULL,
        data TEXT NOT NULL DEFAULT '{}',
        claimed_by TEXT,
        claimed_until TIMESTAMPTZ
    )""",
    *_common_indexes(),
]

# v2: the static part of every execution record (step ids, definitions, options) is stored once per
# workflow definition, content-addressed, instead of once per execution: it grows with the square
# of the step count (Medusa's step ids repeat their ancestors), and per execution it made every
# run of a long workflow write megabytes.
_SQLITE_V2 = [
    """CREATE TABLE IF NOT EXISTS workflow_definition (
        hash TEXT PRIMARY KEY,
        workflow_id TEXT NOT NULL,
        template TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    "ALTER TABLE workflow_execution ADD COLUMN definition_hash TEXT",
]
_POSTGRES_V2 = [
    """CREATE TABLE IF NOT EXISTS workflow_definition (
        hash TEXT PRIMARY KEY,
        workflow_id TEXT NOT NULL,
        template TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    "ALTER TABLE workflow_execution ADD COLUMN IF NOT EXISTS definition_hash TEXT",
]

# dialect -> [(version, statements)]
MIGRATIONS: dict[str, list[tuple[int, list[str]]]] = {
    "sqlite": [(1, _SQLITE_V1), (2, _SQLITE_V2)],
    "postgresql": [(1, _POSTGRES_V1), (2, _POSTGRES_V2)],
}
