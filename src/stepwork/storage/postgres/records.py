"""PostgreSQL reads: one execution, its step rows, listings, and the definition templates records
are assembled from."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from stepwork.storage.base import ExecutionKey, ExecutionRow, ListQuery, StepRow
from stepwork.storage.postgres.checkpoints import key_params
from stepwork.storage.postgres.connection import Conn, PostgresDatabase
from stepwork.storage.postgres.search import WORKFLOWS_MATCHING, page_and_count_sql, q_condition
from stepwork.storage.postgres.statements import KEY, ROW_COLUMNS
from stepwork.storage.query import count_from_page, like_pattern, q_states, to_sql
from stepwork.storage.rows import execution_row, listed_row

__all__ = ["Records"]

_MAX_BRANCHES = 32  # matching workflows read one index range each; more (a very short q) take the general path
_SEARCH_ORDER_COLUMNS = frozenset({"workflow_id", "transaction_id", "run_id", "created_at"})
_TEXT_ORDER_COLUMNS = frozenset({"id", "workflow_id", "transaction_id", "run_id", "state"})
_SELECT = "SELECT " + ROW_COLUMNS.format(records="execution, context") + " FROM workflow_execution"


def _time_param(params: list[Any]) -> Callable[[Any], str]:
    """The ``param`` function for :func:`to_sql`: validated time operands are the only floats (text
    filters take strings), and are compared as timestamps so the time columns' indexes serve."""
    def param(value: Any) -> str:
        params.append(value)
        return "to_timestamp(%s::float8)" if isinstance(value, float) else "%s"
    return param


def _order_item(column: str, direction: str) -> str:
    collate = ' COLLATE "C"' if column in _TEXT_ORDER_COLUMNS else ""
    return f"{column}{collate} {direction}"


class Records(PostgresDatabase):
    """Reads and listing; definition templates."""

    async def latest(self, workflow_id: str, transaction_id: str) -> ExecutionRow | None:
        r = await self._one(
            f"{_SELECT} WHERE workflow_id = %s AND transaction_id = %s AND deleted_at IS NULL "
            'ORDER BY created_at DESC, run_id COLLATE "C" DESC LIMIT 1', (workflow_id, transaction_id))
        return None if r is None else execution_row(r)

    async def get(self, key: ExecutionKey) -> ExecutionRow | None:
        r = await self._one(f"{_SELECT} WHERE {KEY}", key_params(key))
        return None if r is None else execution_row(r)

    async def get_by_id(self, execution_id: str) -> ExecutionRow | None:
        r = await self._one(f"{_SELECT} WHERE id = %s AND deleted_at IS NULL", (execution_id,))
        return None if r is None else execution_row(r)

    async def steps(self, key: ExecutionKey) -> list[StepRow]:
        rows = await self._all(
            "SELECT step_index, record, output, compensate_input, compensate_output FROM workflow_execution_step "
            f"WHERE {KEY} ORDER BY step_index", key_params(key))
        return [StepRow(r[0], json.loads(r[1]), r[2], r[3], r[4]) for r in rows]

    async def _workflows_matching(self, text: str) -> list[str]:
        return [str(r[0]) for r in await self._all(WORKFLOWS_MATCHING, (like_pattern(text),))]

    async def list_rows(self, query: ListQuery) -> tuple[list[ExecutionRow], int]:
        params: list[Any] = []
        q = query.filters.get("q")
        workflows = await self._workflows_matching(q[0][1]) if q else []
        if (q and len(query.filters) == 1 and not q_states(q[0][1]) and len(workflows) <= _MAX_BRANCHES
                and all(c in _SEARCH_ORDER_COLUMNS for c, _ in query.order)):
            return await self._list_searched(query, q[0][1], workflows)

        def search(text: str) -> str:
            return q_condition(text, workflows, params)
        where = to_sql(dict(query.filters), _time_param(params), lambda c: c, "ILIKE", search)
        order = ", ".join(_order_item(c, d) for c, d in query.order) or "created_at ASC"
        columns = ROW_COLUMNS.format(records="execution, context" if query.with_records else "NULL, NULL")
        limit = None if query.take is None else int(query.take)  # LIMIT NULL: no limit

        async def run(conn: Conn) -> tuple[list[ExecutionRow], int]:
            cur = await conn.execute(
                f"SELECT {columns} FROM workflow_execution WHERE {where} ORDER BY {order} LIMIT %s OFFSET %s",
                [*params, limit, int(query.skip)])
            rows = await cur.fetchall()
            count = count_from_page(query, len(rows))
            if count is None:
                cur = await conn.execute(f"SELECT count(*) FROM workflow_execution WHERE {where}", params)
                counted = await cur.fetchone()
                count = int(counted[0] if counted else 0)
            return [listed_row(r, query.with_records) for r in rows], count
        return await self._run(run)

    async def _list_searched(self, query: ListQuery, text: str, workflows: list[str]) -> tuple[list[ExecutionRow], int]:
        """q alone, in an order of columns the search table has (see :mod:`.search`)."""
        order = ", ".join(_order_item(c, d) for c, d in query.order) or "created_at ASC"
        columns = ROW_COLUMNS.format(records="execution, context" if query.with_records else "NULL, NULL")
        page, page_params, count_sql, count_params = page_and_count_sql(
            text, workflows, order, columns, None if query.take is None else int(query.take), int(query.skip))

        async def run(conn: Conn) -> tuple[list[ExecutionRow], int]:
            cur = await conn.execute(page, page_params)
            rows = await cur.fetchall()
            count = count_from_page(query, len(rows))
            if count is None:
                cur = await conn.execute(count_sql, count_params)
                counted = await cur.fetchone()
                count = int(counted[0] if counted else 0)
            return [listed_row(r, query.with_records) for r in rows], count
        return await self._run(run)

    async def put_definition(self, definition_hash: str, workflow_id: str, template: str, now: float) -> None:
        await self._exec("INSERT INTO workflow_definition (hash, workflow_id, template, created_at) "
                         "VALUES (%s, %s, %s, to_timestamp(%s::float8)) ON CONFLICT (hash) DO NOTHING",
                         (definition_hash, workflow_id, template, now))

    async def get_definition(self, definition_hash: str) -> str | None:
        r = await self._one("SELECT template FROM workflow_definition WHERE hash = %s", (definition_hash,))
        return None if r is None else str(r[0])
