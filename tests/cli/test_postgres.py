"""The command line on PostgreSQL: migrate, demo, list and show on a throwaway database, and the key
commands on the same database."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.cli.conftest import Cli
from tests.conftest import BACKENDS, throwaway_pg_database

pytestmark = pytest.mark.skipif("postgres" not in BACKENDS, reason="STEPWORK_TEST_BACKENDS leaves PostgreSQL out")


@pytest.fixture
def pg_cli(cli: Cli) -> Iterator[Cli]:
    """The command, run against a PostgreSQL database of this test's own."""
    with throwaway_pg_database("stepwork_cli") as url:
        yield Cli(cli.cwd, url)


def test_migrate_demo_list_and_show_on_postgres(pg_cli: Cli) -> None:
    migrated = pg_cli("migrate")
    assert migrated.code == 0 and "is up to date" in migrated.stdout, migrated.output
    assert pg_cli("demo").code == 0
    listed = json.loads(pg_cli("executions", "list", "--state", "reverted", "--json").stdout)
    assert listed["count"] == 1
    execution_id = listed["workflow_executions"][0]["id"]
    shown = pg_cli("executions", "show", execution_id)
    assert "error (invoke) ConnectionError: The CMS is down" in shown.stdout, shown.output
    run = pg_cli("run", "app:checkout", "--input", '{"qty": 1}')
    assert run.code == 1 and "↺ reserve-stock compensated" in run.stdout, run.output


def test_keys_on_postgres(pg_cli: Cli) -> None:
    created = pg_cli("keys", "create", "pg")
    key_id = re.search(r"Created API key (apk_\w+)", created.stdout)
    assert key_id, created.output
    assert pg_cli("keys", "revoke", key_id.group(1)).code == 0
    keys = json.loads(pg_cli("keys", "list", "--json").stdout)["api_keys"]
    assert keys[0]["id"] == key_id.group(1) and keys[0]["revoked_at"] is not None
