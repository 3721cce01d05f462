"""q on PostgreSQL: the workflow ids it matches, found among the distinct ones, and the transaction
and run ids it matches, found through the search table (see :mod:`stepwork.storage.search`).

The split follows where frequent matches come from: a workflow id is shared by many executions (a
q naming a workflow matches a quarter of W9's 100,000 rows), a transaction or run id by one. So a
matching workflow id is never rechecked row by row: its rows are counted from the
``(workflow_id, created_at, …)`` index and its first rows read from it in order; only the rows
whose transaction or run id matches go through the trigram index (and its recheck).
"""

from __future__ import annotations

from typing import Any

from stepwork.storage.query import like_pattern
from stepwork.storage.search import SEARCH_TABLE, SEPARATOR

__all__ = ["KEYS", "WORKFLOWS_MATCHING", "ids_condition", "page_and_count_sql", "q_condition"]

KEYS = "workflow_id, transaction_id, run_id"
_ESCAPE = "ESCAPE '\\'"

# The live workflow ids containing %s (ILIKE): the distinct ids are read with one index descent
# each (a "loose index scan" of idx_wfe_workflow_created_at), not by reading every row.
WORKFLOWS_MATCHING = f"""WITH RECURSIVE w(id) AS (
    SELECT min(workflow_id) FROM workflow_execution WHERE deleted_at IS NULL
    UNION ALL
    SELECT (SELECT min(workflow_id) FROM workflow_execution WHERE deleted_at IS NULL AND workflow_id > w.id)
    FROM w WHERE w.id IS NOT NULL)
SELECT id FROM w WHERE id ILIKE %s {_ESCAPE}"""


def ids_condition(text: str, params: list[Any]) -> str:
    """The search table's rows whose transaction id or run id contains ``text`` (case-insensitive):
    ``ids`` (both lowercased, joined by the separator) by ``LIKE``, which the trigram index answers;
    each id on its own too if ``text`` holds the separator (a match in ``ids`` could span both)."""
    pattern = like_pattern(text)
    params.append(pattern)
    where = f"ids LIKE lower(%s) {_ESCAPE}"
    if SEPARATOR in text:
        params.extend([pattern, pattern])
        where += f" AND (transaction_id ILIKE %s {_ESCAPE} OR run_id ILIKE %s {_ESCAPE})"
    return where


def q_condition(text: str, workflows: list[str], params: list[Any]) -> str:
    """q's condition on ``workflow_execution`` rows (any filters, any order): the workflow id is one
    of ``workflows`` (those containing ``text``), or the search table has the row's key."""
    params.append(workflows)
    return (f"(workflow_id = ANY(%s::text[]) OR ({KEYS}) IN (SELECT {KEYS} FROM {SEARCH_TABLE} "
            f"WHERE {ids_condition(text, params)}))")


def page_and_count_sql(text: str, workflows: list[str], order: str, columns: str, limit: int | None,
                       skip: int) -> tuple[str, list[Any], str, list[Any]]:
    """q alone, in ``order`` (of columns both tables have): the page's statement and the count's,
    with their parameters. The page merges the first ``skip + limit`` rows of each matching workflow
    (read in order from its index) with those of the search table's matches in other workflows."""
    first = None if limit is None else skip + limit
    page_params: list[Any] = []
    branches = []
    for workflow_id in workflows:
        page_params += [workflow_id, first]
        branches.append(f"(SELECT {KEYS}, created_at FROM workflow_execution WHERE deleted_at IS NULL "
                        f"AND workflow_id = %s ORDER BY {order} LIMIT %s)")
    others = ids_condition(text, page_params)
    page_params += [workflows, first]
    branches.append(f"(SELECT {KEYS}, created_at FROM {SEARCH_TABLE} WHERE {others} "
                    f"AND workflow_id <> ALL(%s::text[]) ORDER BY {order} LIMIT %s)")
    page_params += [limit, skip]
    page = (f"SELECT {columns} FROM workflow_execution WHERE ({KEYS}) IN (SELECT {KEYS} FROM "
            f"({' UNION ALL '.join(branches)}) AS matched ORDER BY {order} LIMIT %s OFFSET %s) ORDER BY {order}")
    count_params: list[Any] = [workflows]
    others = ids_condition(text, count_params)
    count_params.append(workflows)
    count = (f"SELECT (SELECT count(*) FROM workflow_execution WHERE deleted_at IS NULL AND "
             f"workflow_id = ANY(%s::text[])) + (SELECT count(*) FROM {SEARCH_TABLE} WHERE {others} "
             f"AND workflow_id <> ALL(%s::text[]))")
    return page, page_params, count, count_params
