"""`stepwork migrate` creates (or upgrades) the tables; `stepwork cleanup` removes expired executions."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from tests.cli.conftest import Cli


def test_migrate_creates_the_engine_tables_and_may_run_again(cli: Cli, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(2):
        done = cli.here("migrate", capsys=capsys, monkeypatch=monkeypatch)
        assert done.code == 0, done.output
        assert done.stdout.startswith(f"The database {cli.database_url} is up to date (schema version ")
    with sqlite3.connect(cli.cwd / "cli.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"workflow_execution", "workflow_execution_step", "workflow_timer", "stepwork_migrations"} <= tables


def test_cleanup_removes_only_expired_executions_and_prints_the_count(cli: Cli) -> None:
    for workflow in ("expiring", "expiring", "reserve_only"):  # retention 0 s, 0 s, one hour
        assert cli("run", f"app:{workflow}", "--input", '{"qty": 1}').code == 0
    done = cli("cleanup")
    assert done.code == 0, done.output
    assert done.stdout.strip() == f"Removed 2 expired executions from {cli.database_url}."
    left = json.loads(cli("executions", "list", "--json").stdout)
    assert [e["workflow_id"] for e in left["workflow_executions"]] == ["reserve"]
    assert cli("cleanup").stdout.strip() == f"Removed 0 expired executions from {cli.database_url}."


def test_cleanup_and_reading_commands_do_not_run_the_engines_background_work(cli: Cli) -> None:
    """A read or maintenance command on a live database takes over nothing: a run waiting on a due
    retry timer stays waiting (the worker, or `run --wait`, is what continues it)."""
    started = cli("run", "app:retrying", "--input", "{}", "--transaction-id", "retry-ro")
    assert "invoking" in started.stdout, started.output
    time.sleep(0.5)  # the retry timer (0.3 s) is due
    for command in (("cleanup", "--app", "app"), ("migrate",), ("executions", "list")):
        done = cli(*command)
        assert done.code == 0, done.output
    listed = json.loads(cli("executions", "list", "-t", "retry-ro", "--json").stdout)
    assert [e["state"] for e in listed["workflow_executions"]] == ["invoking"]
