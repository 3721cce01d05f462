"""The DDL each schema version applied, frozen exactly as it ran (copied from the released
``stepwork/storage/migrations.py`` and stores): the upgrade tests build databases with it. Never edit
these; when a version is added, freeze what it applies here too.
"""

from __future__ import annotations

__all__ = ["HISTORIES", "MIGRATIONS_TABLE", "RECORD_VERSION"]

# The stores created the table of applied versions themselves, and recorded each version so.
MIGRATIONS_TABLE = {
    "sqlite": "CREATE TABLE IF NOT EXISTS stepwork_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)",
    "postgresql": ("CREATE TABLE IF NOT EXISTS stepwork_migrations (version INTEGER PRIMARY KEY, "
                   "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"),
}
RECORD_VERSION = {
    "sqlite": "INSERT INTO stepwork_migrations (version, applied_at) VALUES (?, ?)",
    # (the first stores left applied_at to its DEFAULT now(), which version 3 dropped; later stores write it)
    "postgresql": "INSERT INTO stepwork_migrations (version, applied_at) VALUES (%s, now())",
}

# Version 1 as the first store (SQLite only, commit 5ed135d) applied it: with two indexes on
# workflow_execution, (workflow_id) and (workflow_id, transaction_id), the next commit left out.
SQLITE_V1_FIRST = [
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
    "CREATE INDEX IF NOT EXISTS idx_wfe_deleted_at ON workflow_execution (deleted_at) WHERE deleted_at IS NULL",
    "CREATE INDEX IF NOT EXISTS idx_wfe_id ON workflow_execution (id) WHERE deleted_at IS NULL",
    "CREATE INDEX IF NOT EXISTS idx_wfe_workflow_id ON workflow_execution (workflow_id) WHERE deleted_at IS NULL",
    ("CREATE INDEX IF NOT EXISTS idx_wfe_transaction_id ON workflow_execution (transaction_id) WHERE "
     "deleted_at IS NULL"),
    "CREATE INDEX IF NOT EXISTS idx_wfe_state ON workflow_execution (state) WHERE deleted_at IS NULL",
    "CREATE INDEX IF NOT EXISTS idx_wfe_run_id ON workflow_execution (run_id) WHERE deleted_at IS NULL",
    ("CREATE INDEX IF NOT EXISTS idx_wfe_workflow_transaction ON workflow_execution (workflow_id, "
     "transaction_id) WHERE deleted_at IS NULL"),
    ("CREATE INDEX IF NOT EXISTS idx_wfe_state_updated_at ON workflow_execution (state, updated_at) WHERE "
     "deleted_at IS NULL"),
    ("CREATE INDEX IF NOT EXISTS idx_wfe_retention_time_updated_at_state ON workflow_execution "
     "(retention_time, updated_at, state) WHERE deleted_at IS NULL AND retention_time IS NOT NULL"),
    ("CREATE INDEX IF NOT EXISTS idx_wfe_updated_at_retention_time ON workflow_execution (updated_at, "
     "retention_time) WHERE deleted_at IS NULL AND retention_time IS NOT NULL AND state IN ('done', "
     "'failed', 'reverted')"),
    ("CREATE UNIQUE INDEX IF NOT EXISTS uq_wfe_live_transaction ON workflow_execution (workflow_id, "
     "transaction_id) WHERE deleted_at IS NULL AND state NOT IN ('done', 'failed', 'reverted')"),
    ("CREATE INDEX IF NOT EXISTS idx_wfe_lease ON workflow_execution (lease_expires_at) WHERE lease_owner "
     "IS NOT NULL"),
    ("CREATE INDEX IF NOT EXISTS idx_wfe_expires_at ON workflow_execution (expires_at) WHERE expires_at "
     "IS NOT NULL"),
    "CREATE INDEX IF NOT EXISTS idx_wft_due_at ON workflow_timer (due_at)",
]

# Version 1 as every later release applied it.
SQLITE_V1 = [
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
    "CREATE INDEX IF NOT EXISTS idx_wfe_deleted_at ON workflow_execution (deleted_at) WHERE deleted_at IS NULL",
    "CREATE INDEX IF NOT EXISTS idx_wfe_id ON workflow_execution (id) WHERE deleted_at IS NULL",
    ("CREATE INDEX IF NOT EXISTS idx_wfe_transaction_id ON workflow_execution (transaction_id) WHERE "
     "deleted_at IS NULL"),
    "CREATE INDEX IF NOT EXISTS idx_wfe_state ON workflow_execution (state) WHERE deleted_at IS NULL",
    "CREATE INDEX IF NOT EXISTS idx_wfe_run_id ON workflow_execution (run_id) WHERE deleted_at IS NULL",
    ("CREATE INDEX IF NOT EXISTS idx_wfe_state_updated_at ON workflow_execution (state, updated_at) WHERE "
     "deleted_at IS NULL"),
    ("CREATE INDEX IF NOT EXISTS idx_wfe_retention_time_updated_at_state ON workflow_execution "
     "(retention_time, updated_at, state) WHERE deleted_at IS NULL AND retention_time IS NOT NULL"),
    ("CREATE INDEX IF NOT EXISTS idx_wfe_updated_at_retention_time ON workflow_execution (updated_at, "
     "retention_time) WHERE deleted_at IS NULL AND retention_time IS NOT NULL AND state IN ('done', "
     "'failed', 'reverted')"),
    ("CREATE UNIQUE INDEX IF NOT EXISTS uq_wfe_live_transaction ON workflow_execution (workflow_id, "
     "transaction_id) WHERE deleted_at IS NULL AND state NOT IN ('done', 'failed', 'reverted')"),
    ("CREATE INDEX IF NOT EXISTS idx_wfe_lease ON workflow_execution (lease_expires_at) WHERE lease_owner "
     "IS NOT NULL"),
    ("CREATE INDEX IF NOT EXISTS idx_wfe_expires_at ON workflow_execution (expires_at) WHERE expires_at "
     "IS NOT NULL"),
    "CREATE INDEX IF NOT EXISTS idx_wft_due_at ON workflow_timer (due_at)",
]

# Version 2: definition templates.
SQLITE_V2 = [
    """CREATE TABLE IF NOT EXISTS workflow_definition (
        hash TEXT PRIMARY KEY,
        workflow_id TEXT NOT NULL,
        template TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    "ALTER TABLE workflow_execution ADD COLUMN definition_hash TEXT",
]

# Version 1 on PostgreSQL (the PostgreSQL store came with commit 08f832d).
POSTGRES_V1 = [
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
    "CREATE INDEX IF NOT EXISTS idx_wfe_deleted_at ON workflow_execution (deleted_at) WHERE deleted_at IS NULL",
    "CREATE INDEX IF NOT EXISTS idx_wfe_id ON workflow_execution (id) WHERE deleted_at IS NULL",
    ("CREATE INDEX IF NOT EXISTS idx_wfe_transaction_id ON workflow_execution (transaction_id) WHERE "
     "deleted_at IS NULL"),
    "CREATE INDEX IF NOT EXISTS idx_wfe_state ON workflow_execution (state) WHERE deleted_at IS NULL",
    "CREATE INDEX IF NOT EXISTS idx_wfe_run_id ON workflow_execution (run_id) WHERE deleted_at IS NULL",
    ("CREATE INDEX IF NOT EXISTS idx_wfe_state_updated_at ON workflow_execution (state, updated_at) WHERE "
     "deleted_at IS NULL"),
    ("CREATE INDEX IF NOT EXISTS idx_wfe_retention_time_updated_at_state ON workflow_execution "
     "(retention_time, updated_at, state) WHERE deleted_at IS NULL AND retention_time IS NOT NULL"),
    ("CREATE INDEX IF NOT EXISTS idx_wfe_updated_at_retention_time ON workflow_execution (updated_at, "
     "retention_time) WHERE deleted_at IS NULL AND retention_time IS NOT NULL AND state IN ('done', "
     "'failed', 'reverted')"),
    ("CREATE UNIQUE INDEX IF NOT EXISTS uq_wfe_live_transaction ON workflow_execution (workflow_id, "
     "transaction_id) WHERE deleted_at IS NULL AND state NOT IN ('done', 'failed', 'reverted')"),
    ("CREATE INDEX IF NOT EXISTS idx_wfe_lease ON workflow_execution (lease_expires_at) WHERE lease_owner "
     "IS NOT NULL"),
    ("CREATE INDEX IF NOT EXISTS idx_wfe_expires_at ON workflow_execution (expires_at) WHERE expires_at "
     "IS NOT NULL"),
    "CREATE INDEX IF NOT EXISTS idx_wft_due_at ON workflow_timer (due_at)",
]

# Version 2: definition templates.
POSTGRES_V2 = [
    """CREATE TABLE IF NOT EXISTS workflow_definition (
        hash TEXT PRIMARY KEY,
        workflow_id TEXT NOT NULL,
        template TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    "ALTER TABLE workflow_execution ADD COLUMN IF NOT EXISTS definition_hash TEXT",
]

# Version 3 (one schema on every database: indexes the queries use; SQLite's step rows WITHOUT ROWID;
# PostgreSQL's time columns without DEFAULT now()).
_V3_DROPPED = [f"DROP INDEX IF EXISTS {name}" for name in (
    "idx_wfe_workflow_id", "idx_wfe_workflow_transaction", "idx_wfe_deleted_at", "idx_wfe_state", "idx_wfe_run_id",
    "idx_wfe_retention_time_updated_at_state", "idx_wfe_updated_at_retention_time")]
_V3_CREATED = [
    "CREATE INDEX IF NOT EXISTS idx_wfe_created_at ON workflow_execution (created_at)",
    "CREATE INDEX IF NOT EXISTS idx_wft_execution ON workflow_timer (workflow_id, transaction_id, run_id)",
]
SQLITE_V3 = [
    *_V3_DROPPED,
    *_V3_CREATED,
    """CREATE TABLE workflow_execution_step_v3 (
	workflow_id TEXT NOT NULL,
	transaction_id TEXT NOT NULL,
	run_id TEXT NOT NULL,
	step_index INTEGER NOT NULL,
	record TEXT NOT NULL,
	output TEXT,
	compensate_input TEXT,
	compensate_output TEXT,
	PRIMARY KEY (workflow_id, transaction_id, run_id, step_index)
)
 WITHOUT ROWID""",
    ("INSERT INTO workflow_execution_step_v3 (workflow_id, transaction_id, run_id, step_index, record, output, "
     "compensate_input, compensate_output) SELECT workflow_id, transaction_id, run_id, step_index, record, output, "
     "compensate_input, compensate_output FROM workflow_execution_step"),
    "DROP TABLE workflow_execution_step",
    "ALTER TABLE workflow_execution_step_v3 RENAME TO workflow_execution_step",
]
POSTGRES_V3 = [
    *_V3_DROPPED,
    *_V3_CREATED,
    "ALTER TABLE workflow_execution ALTER COLUMN created_at DROP DEFAULT",
    "ALTER TABLE workflow_execution ALTER COLUMN updated_at DROP DEFAULT",
    "ALTER TABLE workflow_definition ALTER COLUMN created_at DROP DEFAULT",
    "ALTER TABLE stepwork_migrations ALTER COLUMN applied_at DROP DEFAULT",
]

# Version 4: the HTTP admin API's keys.
_V4 = {
    dialect: [
        ("CREATE TABLE IF NOT EXISTS stepwork_api_key (\n\tid TEXT NOT NULL, \n\tname TEXT NOT NULL, \n\tprefix TEXT "
         f"NOT NULL, \n\tsecret_sha256 TEXT NOT NULL, \n\tcreated_at {time} NOT NULL, \n\trevoked_at {time}, \n\t"
         f"last_used_at {time}, \n\tPRIMARY KEY (id)\n)"),
        "CREATE UNIQUE INDEX IF NOT EXISTS uq_api_key_secret_sha256 ON stepwork_api_key (secret_sha256)",
    ] for dialect, time in (("sqlite", "REAL"), ("postgresql", "TIMESTAMP WITH TIME ZONE"))
}
SQLITE_V4, POSTGRES_V4 = _V4["sqlite"], _V4["postgresql"]

# Every schema history a database may have, by dialect: [(version, statements applied), ...].
HISTORIES: dict[str, dict[str, list[tuple[int, list[str]]]]] = {
    "sqlite": {
        "v1-first": [(1, SQLITE_V1_FIRST)],
        "v1-first+v2": [(1, SQLITE_V1_FIRST), (2, SQLITE_V2)],
        "v1": [(1, SQLITE_V1)],
        "v2": [(1, SQLITE_V1), (2, SQLITE_V2)],
        "v1-first+v2+v3": [(1, SQLITE_V1_FIRST), (2, SQLITE_V2), (3, SQLITE_V3)],
        "v3": [(1, SQLITE_V1), (2, SQLITE_V2), (3, SQLITE_V3)],
        "v4": [(1, SQLITE_V1), (2, SQLITE_V2), (3, SQLITE_V3), (4, SQLITE_V4)],
        "v1-first+v2+v3+v4": [(1, SQLITE_V1_FIRST), (2, SQLITE_V2), (3, SQLITE_V3), (4, SQLITE_V4)],
    },
    "postgresql": {
        "v1": [(1, POSTGRES_V1)],
        "v2": [(1, POSTGRES_V1), (2, POSTGRES_V2)],
        "v3": [(1, POSTGRES_V1), (2, POSTGRES_V2), (3, POSTGRES_V3)],
        "v4": [(1, POSTGRES_V1), (2, POSTGRES_V2), (3, POSTGRES_V3), (4, POSTGRES_V4)],
    },
}

# Version 5 (the HTTP list route's indexes; on PostgreSQL q's trigram index when pg_trgm can be had).
_V5_INDEXES = [
    "DROP INDEX IF EXISTS idx_wfe_state_updated_at",
    ("CREATE INDEX IF NOT EXISTS idx_wfe_state_created_at ON workflow_execution (state, created_at) WHERE "
     "deleted_at IS NULL"),
    ("CREATE INDEX IF NOT EXISTS idx_wfe_workflow_created_at ON workflow_execution (workflow_id, created_at, "
     "transaction_id, run_id) WHERE deleted_at IS NULL"),
]
SQLITE_V5 = list(_V5_INDEXES)
POSTGRES_V5 = [*_V5_INDEXES, """DO $stepwork$
DECLARE trgm_schema text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
            RETURN;
        END IF;
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
        EXCEPTION WHEN insufficient_privilege OR invalid_schema_name OR undefined_file THEN
            RETURN;
        END;
    END IF;
    SELECT n.nspname INTO trgm_schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_trgm';
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_wfe_search ON workflow_execution USING gin '
                   '((workflow_id || '' '' || transaction_id || '' '' || run_id) %I.gin_trgm_ops) '
                   'WHERE deleted_at IS NULL', trgm_schema);
END $stepwork$"""]

HISTORIES["sqlite"]["v5"] = [(1, SQLITE_V1), (2, SQLITE_V2), (3, SQLITE_V3), (4, SQLITE_V4), (5, SQLITE_V5)]
HISTORIES["postgresql"]["v5"] = [(1, POSTGRES_V1), (2, POSTGRES_V2), (3, POSTGRES_V3), (4, POSTGRES_V4),
                                 (5, POSTGRES_V5)]

# Version 6 (q's search table kept by triggers; SQLite with FTS5's trigram tokenizer).
SQLITE_V6 = [
    ('CREATE VIRTUAL TABLE IF NOT EXISTS workflow_execution_search USING fts5(workflow_id, '
     "transaction_id, run_id, content='', tokenize='trigram')"),
    ('CREATE TRIGGER IF NOT EXISTS trg_wfe_search_insert AFTER INSERT ON workflow_execution WHEN '
     'new.deleted_at IS NULL BEGIN INSERT INTO workflow_execution_search (rowid, workflow_id, '
     'transaction_id, run_id) VALUES (new.rowid, new.workflow_id, new.transaction_id, new.run_id); '
     'END'),
    ('CREATE TRIGGER IF NOT EXISTS trg_wfe_search_delete AFTER DELETE ON workflow_execution WHEN '
     'old.deleted_at IS NULL BEGIN INSERT INTO workflow_execution_search (workflow_execution_search, '
     "rowid, workflow_id, transaction_id, run_id) VALUES ('delete', old.rowid, old.workflow_id, "
     'old.transaction_id, old.run_id); END'),
    ('CREATE TRIGGER IF NOT EXISTS trg_wfe_search_update AFTER UPDATE OF workflow_id, '
     'transaction_id, run_id, deleted_at ON workflow_execution BEGIN INSERT INTO '
     'workflow_execution_search (workflow_execution_search, rowid, workflow_id, transaction_id, '
     "run_id) SELECT 'delete', old.rowid, old.workflow_id, old.transaction_id, old.run_id WHERE "
     'old.deleted_at IS NULL; INSERT INTO workflow_execution_search (rowid, workflow_id, '
     'transaction_id, run_id) SELECT new.rowid, new.workflow_id, new.transaction_id, new.run_id '
     'WHERE new.deleted_at IS NULL; END'),
    ('INSERT INTO workflow_execution_search (rowid, workflow_id, transaction_id, run_id) SELECT '
     'rowid, workflow_id, transaction_id, run_id FROM workflow_execution WHERE deleted_at IS NULL'),
]
POSTGRES_V6 = [
    ('CREATE TABLE IF NOT EXISTS workflow_execution_search (workflow_id TEXT NOT NULL, '
     'transaction_id TEXT NOT NULL, run_id TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL, ids TEXT '
     'NOT NULL, PRIMARY KEY (workflow_id, transaction_id, run_id))'),
    ('INSERT INTO workflow_execution_search (workflow_id, transaction_id, run_id, created_at, ids) '
     'SELECT workflow_id, transaction_id, run_id, created_at, lower(transaction_id || chr(31) || '
     'run_id) FROM workflow_execution WHERE deleted_at IS NULL ON CONFLICT DO NOTHING'),
    """DO $stepwork$
DECLARE trgm_schema text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
            RETURN;
        END IF;
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
        EXCEPTION WHEN insufficient_privilege OR invalid_schema_name OR undefined_file THEN
            RETURN;
        END;
    END IF;
    SELECT n.nspname INTO trgm_schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_trgm';
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_wfe_search_ids ON workflow_execution_search USING gin '
                   '(ids %I.gin_trgm_ops)', trgm_schema);
END $stepwork$""",
    """DO $stepwork$
BEGIN
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.stepwork_wfe_search() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE %1$I.workflow_execution_search;
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' AND OLD.deleted_at IS NULL THEN
        DELETE FROM %1$I.workflow_execution_search WHERE workflow_id = OLD.workflow_id
            AND transaction_id = OLD.transaction_id AND run_id = OLD.run_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.deleted_at IS NULL THEN
        INSERT INTO %1$I.workflow_execution_search (workflow_id, transaction_id, run_id, created_at, ids)
            VALUES (NEW.workflow_id, NEW.transaction_id, NEW.run_id, NEW.created_at, lower(NEW.transaction_id || chr(31) || NEW.run_id))
            ON CONFLICT (workflow_id, transaction_id, run_id) DO UPDATE SET created_at = EXCLUDED.created_at, ids = EXCLUDED.ids;
    END IF;
    RETURN NULL;
END $body$$f$, current_schema());
END $stepwork$""",  # noqa: E501
    'DROP TRIGGER IF EXISTS trg_wfe_search_insert ON workflow_execution',
    ('CREATE TRIGGER trg_wfe_search_insert AFTER INSERT ON workflow_execution FOR EACH ROW EXECUTE '
     'FUNCTION stepwork_wfe_search()'),
    'DROP TRIGGER IF EXISTS trg_wfe_search_delete ON workflow_execution',
    ('CREATE TRIGGER trg_wfe_search_delete AFTER DELETE ON workflow_execution FOR EACH ROW EXECUTE '
     'FUNCTION stepwork_wfe_search()'),
    'DROP TRIGGER IF EXISTS trg_wfe_search_truncate ON workflow_execution',
    ('CREATE TRIGGER trg_wfe_search_truncate AFTER TRUNCATE ON workflow_execution FOR EACH STATEMENT '
     'EXECUTE FUNCTION stepwork_wfe_search()'),
    'DROP TRIGGER IF EXISTS trg_wfe_search_update ON workflow_execution',
    ('CREATE TRIGGER trg_wfe_search_update AFTER UPDATE OF workflow_id, transaction_id, run_id, '
     'deleted_at, created_at ON workflow_execution FOR EACH ROW WHEN (OLD.workflow_id IS DISTINCT '
     'FROM NEW.workflow_id OR OLD.transaction_id IS DISTINCT FROM NEW.transaction_id OR OLD.run_id '
     'IS DISTINCT FROM NEW.run_id OR OLD.created_at IS DISTINCT FROM NEW.created_at OR '
     '(OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)) EXECUTE FUNCTION stepwork_wfe_search()'),
    'DROP INDEX IF EXISTS idx_wfe_search',
]

HISTORIES["sqlite"]["v6"] = [*HISTORIES["sqlite"]["v5"], (6, SQLITE_V6)]
HISTORIES["postgresql"]["v6"] = [*HISTORIES["postgresql"]["v5"], (6, POSTGRES_V6)]

# Version 7 (queued runs), as it ran.
SQLITE_V7 = [
    "ALTER TABLE workflow_execution ADD COLUMN queued_at REAL",
    "ALTER TABLE workflow_execution ADD COLUMN priority INTEGER DEFAULT 0 NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_wfe_queue ON workflow_execution (priority DESC, queued_at) "
    "WHERE queued_at IS NOT NULL",
]
POSTGRES_V7 = [
    "ALTER TABLE workflow_execution ADD COLUMN queued_at TIMESTAMP WITH TIME ZONE",
    "ALTER TABLE workflow_execution ADD COLUMN priority INTEGER DEFAULT 0 NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_wfe_queue ON workflow_execution (priority DESC, queued_at) "
    "WHERE queued_at IS NOT NULL",
]

HISTORIES["sqlite"]["v7"] = [*HISTORIES["sqlite"]["v6"], (7, SQLITE_V7)]
HISTORIES["postgresql"]["v7"] = [*HISTORIES["postgresql"]["v6"], (7, POSTGRES_V7)]

# Version 8 (workers), as it ran.
SQLITE_V8 = [
    "CREATE TABLE IF NOT EXISTS stepwork_worker (\n\tid TEXT, \n\thost TEXT NOT NULL, \n\tpid INTEGER NOT NULL, "
    "\n\tconcurrency INTEGER NOT NULL, \n\tlease_ttl REAL NOT NULL, \n\tdefinitions TEXT DEFAULT '[]' NOT NULL, "
    "\n\tstarted_at REAL NOT NULL, \n\theartbeat_at REAL NOT NULL, \n\tstopped_at REAL, \n\tPRIMARY KEY (id)\n)",
]
POSTGRES_V8 = [
    "CREATE TABLE IF NOT EXISTS stepwork_worker (\n\tid TEXT, \n\thost TEXT NOT NULL, \n\tpid INTEGER NOT NULL, "
    "\n\tconcurrency INTEGER NOT NULL, \n\tlease_ttl DOUBLE PRECISION NOT NULL, "
    "\n\tdefinitions TEXT DEFAULT '[]' NOT NULL, \n\tstarted_at TIMESTAMP WITH TIME ZONE NOT NULL, "
    "\n\theartbeat_at TIMESTAMP WITH TIME ZONE NOT NULL, \n\tstopped_at TIMESTAMP WITH TIME ZONE, "
    "\n\tPRIMARY KEY (id)\n)",
]

HISTORIES["sqlite"]["v8"] = [*HISTORIES["sqlite"]["v7"], (8, SQLITE_V8)]
HISTORIES["postgresql"]["v8"] = [*HISTORIES["postgresql"]["v7"], (8, POSTGRES_V8)]
