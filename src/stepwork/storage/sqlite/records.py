"""SQLite reads: one execution, its step rows, listings, and the definition templates records are
assembled from."""

from __future__ import annotations

import json
from typing import Any

from stepwork.storage.base import ExecutionKey, ExecutionRow, ListQuery, StepRow
from stepwork.storage.query import count_from_page, q_states, to_sql
from stepwork.storage.rows import execution_row, listed_row
from stepwork.storage.search import MIN_MATCH, SEARCH_TABLE, fts_phrase
from stepwork.storage.sqlite.checkpoints import COLUMNS
from stepwork.storage.sqlite.connection import SQLiteDatabase

__all__ = ["Records"]

_SELECT = f"SELECT {COLUMNS} FROM workflow_execution"
_Q_SCAN = " INDEXED BY idx_wfe_workflow_created_at"
_SEARCHED = f"rowid IN (SELECT rowid FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH {{}})"
_WALK = " INDEXED BY idx_wfe_created_at"
# Up to this many matches, reading them by rowid and sorting them is cheaper than walking the order's
# index (which reads ~rows/matches index entries per row of the page).
_FEW = 2000
_SELECT_LIGHT = "SELECT " + COLUMNS.replace("execution, context", "NULL, NULL") + " FROM workflow_execution"


class Records(SQLiteDatabase):
    """Reads and listing; definition templates."""

    async def latest(self, workflow_id: str, transaction_id: str) -> ExecutionRow | None:
        r = await self._retry(lambda: self.conn.execute(
            f"{_SELECT} WHERE workflow_id = ? AND transaction_id = ? AND deleted_at IS NULL "
            "ORDER BY created_at DESC, run_id DESC LIMIT 1", (workflow_id, transaction_id)).fetchone())
        return None if r is None else execution_row(r)

    async def get(self, key: ExecutionKey) -> ExecutionRow | None:
        r = await self._retry(lambda: self.conn.execute(
            f"{_SELECT} WHERE workflow_id = ? AND transaction_id = ? AND run_id = ?",
            (key.workflow_id, key.transaction_id, key.run_id)).fetchone())
        return None if r is None else execution_row(r)

    async def get_by_id(self, execution_id: str) -> ExecutionRow | None:
        r = await self._retry(lambda: self.conn.execute(
            f"{_SELECT} WHERE id = ? AND deleted_at IS NULL", (execution_id,)).fetchone())
        return None if r is None else execution_row(r)

    async def steps(self, key: ExecutionKey) -> list[StepRow]:
        rows = await self._retry(lambda: self.conn.execute(
            "SELECT step_index, record, output, compensate_input, compensate_output FROM workflow_execution_step "
            "WHERE workflow_id = ? AND transaction_id = ? AND run_id = ? ORDER BY step_index",
            (key.workflow_id, key.transaction_id, key.run_id)).fetchall())
        return [StepRow(r[0], json.loads(r[1]), r[2], r[3], r[4]) for r in rows]

    async def list_rows(self, query: ListQuery) -> tuple[list[ExecutionRow], int]:
        params: list[Any] = []

        def param(value: Any) -> str:
            params.append(value)
            return "?"
        q = query.filters.get("q")
        text = q[0][1] if q else None
        indexed = text is not None and len(text) >= MIN_MATCH and self._search
        if indexed:
            await self.flush_search()  # q reads the FTS table: it must hold every row committed so far
        if indexed and len(query.filters) == 1 and not q_states(str(text)):
            return await self._list_searched(query, fts_phrase(str(text)))

        def search(text: str) -> str | None:
            return _SEARCHED.format(param(fts_phrase(text))) if len(text) >= MIN_MATCH else None
        where = to_sql(dict(query.filters), param, lambda c: c, "LIKE", search if indexed else None)
        order = ", ".join(f"{c} {d}" for c, d in query.order) or "created_at ASC"
        limit = -1 if query.take is None else int(query.take)
        conn = self.conn
        select = _SELECT if query.with_records else _SELECT_LIGHT
        # q by LIKE (under 3 characters, or no search table) reads every live row once. The index on
        # (workflow_id, created_at, transaction_id, run_id) holds the searched ids: scanning it reads a
        # fraction of the table's pages (SQLite's planner, without statistics, would read the rows).
        scan = _Q_SCAN if q and not indexed else ""
        if scan:
            sql = (f"{select} WHERE rowid IN (SELECT rowid FROM workflow_execution{scan} WHERE {where} "
                   f"ORDER BY {order} LIMIT ? OFFSET ?) ORDER BY {order}")
        else:
            sql = f"{select} WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?"
        rows = await self._retry(lambda: conn.execute(sql, [*params, limit, int(query.skip)]).fetchall())
        count = count_from_page(query, len(rows))
        if count is None:
            count = (await self._retry(lambda: conn.execute(
                f"SELECT COUNT(*) FROM workflow_execution{scan} WHERE {where}", params).fetchone()))[0]
        return [listed_row(r, query.with_records) for r in rows], int(count)

    async def _list_searched(self, query: ListQuery, phrase: str) -> tuple[list[ExecutionRow], int]:
        """q alone: the search table holds exactly the live rows, so it counts the matches by itself;
        the page then either reads the matches by rowid and sorts them (few matches), or walks the
        ``created_at`` index keeping the matches (many: the first rows of the order are soon found)."""
        conn = self.conn
        count = int((await self._retry(lambda: conn.execute(
            f"SELECT count(*) FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH ?", (phrase,)).fetchone()))[0])
        order = ", ".join(f"{c} {d}" for c, d in query.order) or "created_at ASC"
        walk = _WALK if count > _FEW and query.order and query.order[0][0] == "created_at" else ""
        limit = -1 if query.take is None else int(query.take)
        select = _SELECT if query.with_records else _SELECT_LIGHT
        sql = (f"{select}{walk} WHERE {_SEARCHED.format('?')} AND deleted_at IS NULL ORDER BY {order} "
               "LIMIT ? OFFSET ?")
        rows = await self._retry(lambda: conn.execute(sql, (phrase, limit, int(query.skip))).fetchall())
        return [listed_row(r, query.with_records) for r in rows], count

    async def put_definition(self, definition_hash: str, workflow_id: str, template: str, now: float) -> None:
        await self._tx(lambda conn: conn.execute(
            "INSERT INTO workflow_definition (hash, workflow_id, template, created_at) VALUES (?,?,?,?) "
            "ON CONFLICT (hash) DO NOTHING", (definition_hash, workflow_id, template, now)))

    async def get_definition(self, definition_hash: str) -> str | None:
        r = await self._retry(lambda: self.conn.execute(
            "SELECT template FROM workflow_definition WHERE hash = ?", (definition_hash,)).fetchone())
        return None if r is None else str(r[0])
