"""q's search table (schema version 6; on SQLite written in batches since version 9): a narrow copy
of the searched ids of every live execution.

``q`` is a case-insensitive substring of an execution's workflow id, transaction id or run id (or of
its state, a closed set compared by equality: :func:`stepwork.storage.query.q_states`). No B-tree
answers a substring, and reading ``workflow_execution`` for it reads its wide rows; so the store
keeps the three ids of each live row (``deleted_at IS NULL``) in ``workflow_execution_search``,
written by triggers on ``workflow_execution`` (insert, delete, an update of the ids or of
``deleted_at``; on PostgreSQL also ``TRUNCATE``), so every writer keeps it (the stores, retention,
bulk loads, hand-written SQL):

- **SQLite**: an FTS5 table with the ``trigram`` tokenizer (case-insensitive, Unicode case folding),
  contentless (it holds the index only), keyed by the execution's ``rowid`` (which ``VACUUM`` keeps:
  SQLite copies the rowids of a table without an ``INTEGER PRIMARY KEY`` as they are). A phrase of 3
  or more characters finds exactly the rows with it inside one of the three ids (a phrase never
  spans columns). Made only if the SQLite library has FTS5 and ``trigram`` (3.34+); otherwise q
  scans, as version 5 did. Since version 9 the triggers note a new row in
  ``workflow_execution_search_pending`` and the store indexes the pending rows in batches (and
  always before q reads the FTS table): see :func:`sqlite_pending_ddl`.
- **PostgreSQL**: a table of (the three ids, ``created_at``, ``ids``: the transaction and run ids
  lowercased and joined, see :func:`postgres_ids`) with a ``pg_trgm`` GIN index on ``ids`` (if the
  extension can be had): a match reads the trigram index, then rechecks its candidates with
  ``LIKE`` in this narrow table (~150 bytes a row) instead of ``workflow_execution``'s pages. The
  workflow ids q matches are found among the distinct ones (:mod:`stepwork.storage.postgres.search`).
  It replaces version 5's trigram index on ``workflow_execution``.
"""

from __future__ import annotations

import sqlite3
from functools import cache

__all__ = ["MIN_MATCH", "PENDING_TABLE", "SEARCH_TABLE", "SEPARATOR", "fts_phrase", "postgres_ids",
           "postgres_search_ddl", "sqlite_flush_search", "sqlite_pending_ddl",
           "sqlite_search_ddl", "sqlite_supports_search", "trigram_index"]

SEARCH_TABLE = "workflow_execution_search"
PENDING_TABLE = "workflow_execution_search_pending"  # SQLite, version 9: live rows not yet in the FTS table
MIN_MATCH = 3  # a trigram index answers substrings of 3 characters or more; shorter ones scan
SEPARATOR = "\x1f"  # joins the ids in PostgreSQL's ``ids`` column: a q without it matches within one id


def postgres_ids(row: str = "") -> str:
    """PostgreSQL's ``ids`` value of a row (``row``: ``"NEW."`` in the trigger): its transaction id
    and run id lowercased (as ``ILIKE`` lowercases), joined by :data:`SEPARATOR`. A q without the
    separator is inside ``ids`` exactly when it is inside one of them, so ``ids LIKE lower(pattern)``
    is q's exact test there (``LIKE`` on stored lowercase text is several times cheaper than
    ``ILIKE``). Workflow ids are not in it: q finds them among the distinct ones
    (:mod:`stepwork.storage.postgres.search`)."""
    return f"lower({row}transaction_id || chr(31) || {row}run_id)"


def fts_phrase(text: str) -> str:
    """An FTS5 query matching ``text`` as one phrase (a substring, for the trigram tokenizer): quoted,
    its double quotes doubled, so no character of it is FTS5 syntax."""
    return '"' + text.replace('"', '""') + '"'


@cache
def sqlite_supports_search() -> bool:
    """Whether this process's SQLite library has FTS5 with the ``trigram`` tokenizer."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(a, tokenize='trigram')")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


_IDS = "workflow_id, transaction_id, run_id"


def _sqlite_values(row: str) -> str:
    return f"{row}.rowid, {row}.workflow_id, {row}.transaction_id, {row}.run_id"


def sqlite_search_ddl() -> list[str]:
    """The FTS5 table, its triggers, and the rows of the live executions already stored."""
    t = SEARCH_TABLE
    add = f"INSERT INTO {t} (rowid, {_IDS})"
    # A contentless table forgets a row by being told its indexed values again ('delete').
    remove = f"INSERT INTO {t} ({t}, rowid, {_IDS})"
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {t} USING fts5({_IDS}, content='', tokenize='trigram')",
        (f"CREATE TRIGGER IF NOT EXISTS trg_wfe_search_insert AFTER INSERT ON workflow_execution "
         f"WHEN new.deleted_at IS NULL BEGIN {add} VALUES ({_sqlite_values('new')}); END"),
        (f"CREATE TRIGGER IF NOT EXISTS trg_wfe_search_delete AFTER DELETE ON workflow_execution "
         f"WHEN old.deleted_at IS NULL BEGIN {remove} VALUES ('delete', {_sqlite_values('old')}); END"),
        (f"CREATE TRIGGER IF NOT EXISTS trg_wfe_search_update AFTER UPDATE OF {_IDS}, deleted_at "
         f"ON workflow_execution BEGIN "
         f"{remove} SELECT 'delete', {_sqlite_values('old')} WHERE old.deleted_at IS NULL; "
         f"{add} SELECT {_sqlite_values('new')} WHERE new.deleted_at IS NULL; END"),
        f"{add} SELECT rowid, {_IDS} FROM workflow_execution WHERE deleted_at IS NULL",
    ]



# Version 9 (SQLite): the FTS5 table is written in batches. Indexing one execution in a transaction
# of its own cost ~150 µs (FTS5 writes a new segment at every commit, and the trigram tokenizing of
# the three ids is ~35 µs of it), which was most of a 10-step stored run's cost above memory; in
# batches of 256 it costs ~40 µs an execution. So the insert trigger only records the new row's rowid
# in PENDING_TABLE (one small B-tree insert), and the store moves the pending rows into the FTS table
# (sqlite_flush_search) every few hundred inserts, when the engine renews its leases, and before q
# reads the FTS table: q's results stay exactly those of a substring test. An execution deleted
# (without retention: at its finish) while still pending never touches the FTS table.
def sqlite_pending_ddl() -> list[str]:
    """The pending table, its rows (every live execution when the FTS table is new, none when the
    version 6 triggers kept it), and the triggers of version 9 in place of version 6's."""
    t, p = SEARCH_TABLE, PENDING_TABLE
    remove = f"INSERT INTO {t} ({t}, rowid, {_IDS})"
    not_pending = f"NOT EXISTS (SELECT 1 FROM {p} WHERE id = old.rowid)"
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {t} USING fts5({_IDS}, content='', tokenize='trigram')",
        f"CREATE TABLE IF NOT EXISTS {p} (id INTEGER PRIMARY KEY)",
        # (An FTS table without documents either was just made, or there is no live row to index.)
        (f"INSERT OR IGNORE INTO {p} (id) SELECT rowid FROM workflow_execution WHERE deleted_at IS NULL "
         f"AND NOT EXISTS (SELECT 1 FROM {t}_docsize)"),
        "DROP TRIGGER IF EXISTS trg_wfe_search_insert",
        "DROP TRIGGER IF EXISTS trg_wfe_search_delete",
        "DROP TRIGGER IF EXISTS trg_wfe_search_update",
        (f"CREATE TRIGGER trg_wfe_search_insert AFTER INSERT ON workflow_execution "
         f"WHEN new.deleted_at IS NULL BEGIN INSERT OR IGNORE INTO {p} (id) VALUES (new.rowid); END"),
        # A row leaves the FTS table by being told its indexed values again, only if it is there.
        (f"CREATE TRIGGER trg_wfe_search_delete AFTER DELETE ON workflow_execution "
         f"WHEN old.deleted_at IS NULL BEGIN "
         f"{remove} SELECT 'delete', {_sqlite_values('old')} WHERE {not_pending}; "
         f"DELETE FROM {p} WHERE id = old.rowid; END"),
        (f"CREATE TRIGGER trg_wfe_search_update AFTER UPDATE OF {_IDS}, deleted_at "
         f"ON workflow_execution BEGIN "
         f"{remove} SELECT 'delete', {_sqlite_values('old')} WHERE old.deleted_at IS NULL AND {not_pending}; "
         f"DELETE FROM {p} WHERE id = old.rowid; "
         f"INSERT OR IGNORE INTO {p} (id) SELECT new.rowid WHERE new.deleted_at IS NULL; END"),
    ]


def sqlite_flush_search(chunk: int) -> tuple[str, str, str]:
    """What moves pending rows into the FTS table, one transaction a chunk: the highest of the
    ``chunk`` lowest pending rowids (``NULL``: none pending), then, with it as parameter, the
    statements that index the pending rows up to it and take them out of the pending table. (A bulk
    load by hand leaves many rows pending: in chunks, their indexing does not hold the write lock, or
    the loop of the process doing it, for seconds.)"""
    t, p = SEARCH_TABLE, PENDING_TABLE
    return (f"SELECT max(id) FROM (SELECT id FROM {p} ORDER BY id LIMIT {int(chunk)})",
            f"INSERT INTO {t} (rowid, {_IDS}) SELECT e.rowid, e.workflow_id, e.transaction_id, e.run_id "
            f"FROM {p} JOIN workflow_execution AS e ON e.rowid = {p}.id WHERE {p}.id <= ? AND e.deleted_at IS NULL",
            f"DELETE FROM {p} WHERE id <= ?")

# The trigger function names its tables with the schema it is created in (a session's search_path
# may differ from the one the migration ran with).
_POSTGRES_FUNCTION = f"""DO $stepwork$
BEGIN
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I.stepwork_wfe_search() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE %1$I.{SEARCH_TABLE};
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' AND OLD.deleted_at IS NULL THEN
        DELETE FROM %1$I.{SEARCH_TABLE} WHERE workflow_id = OLD.workflow_id
            AND transaction_id = OLD.transaction_id AND run_id = OLD.run_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.deleted_at IS NULL THEN
        INSERT INTO %1$I.{SEARCH_TABLE} ({_IDS}, created_at, ids)
            VALUES (NEW.workflow_id, NEW.transaction_id, NEW.run_id, NEW.created_at, {postgres_ids("NEW.")})
            ON CONFLICT ({_IDS}) DO UPDATE SET created_at = EXCLUDED.created_at, ids = EXCLUDED.ids;
    END IF;
    RETURN NULL;
END $body$$f$, current_schema());
END $stepwork$"""

# Like version 5's index: only if pg_trgm is there or may be created; without it q reads this table.
def trigram_index(create: str) -> str:
    """A PostgreSQL block that runs ``create`` (a ``format()`` string whose ``%I`` is the schema of
    ``pg_trgm``) if ``pg_trgm`` is installed, or may be: created in ``public`` if the server has it
    and the user may; otherwise nothing is created."""
    return f"""DO $stepwork$
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
    EXECUTE format({create}, trgm_schema);
END $stepwork$"""


_POSTGRES_INDEX = trigram_index(
    f"'CREATE INDEX IF NOT EXISTS idx_wfe_search_ids ON {SEARCH_TABLE} USING gin '\n                   "
    "'(ids %I.gin_trgm_ops)'")


def postgres_search_ddl() -> list[str]:
    """The table, its rows for the live executions already stored, its trigram index, the triggers,
    and version 5's trigram index on ``workflow_execution`` dropped (this one replaces it)."""
    t = SEARCH_TABLE
    on, run = "ON workflow_execution FOR EACH ROW", "EXECUTE FUNCTION stepwork_wfe_search()"
    return [
        (f"CREATE TABLE IF NOT EXISTS {t} (workflow_id TEXT NOT NULL, transaction_id TEXT NOT NULL, "
         f"run_id TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL, ids TEXT NOT NULL, PRIMARY KEY ({_IDS}))"),
        (f"INSERT INTO {t} ({_IDS}, created_at, ids) SELECT {_IDS}, created_at, {postgres_ids()} "
         "FROM workflow_execution "
         "WHERE deleted_at IS NULL ON CONFLICT DO NOTHING"),
        _POSTGRES_INDEX,
        _POSTGRES_FUNCTION,
        "DROP TRIGGER IF EXISTS trg_wfe_search_insert ON workflow_execution",
        f"CREATE TRIGGER trg_wfe_search_insert AFTER INSERT {on} {run}",
        "DROP TRIGGER IF EXISTS trg_wfe_search_delete ON workflow_execution",
        f"CREATE TRIGGER trg_wfe_search_delete AFTER DELETE {on} {run}",
        "DROP TRIGGER IF EXISTS trg_wfe_search_truncate ON workflow_execution",
        f"CREATE TRIGGER trg_wfe_search_truncate AFTER TRUNCATE ON workflow_execution FOR EACH STATEMENT {run}",
        "DROP TRIGGER IF EXISTS trg_wfe_search_update ON workflow_execution",
        (f"CREATE TRIGGER trg_wfe_search_update AFTER UPDATE OF {_IDS}, deleted_at, created_at {on} "
         "WHEN (OLD.workflow_id IS DISTINCT FROM NEW.workflow_id OR OLD.transaction_id IS DISTINCT FROM "
         "NEW.transaction_id OR OLD.run_id IS DISTINCT FROM NEW.run_id OR OLD.created_at IS DISTINCT FROM "
         f"NEW.created_at OR (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)) {run}"),
        "DROP INDEX IF EXISTS idx_wfe_search",
    ]
