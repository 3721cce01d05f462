"""`stepwork demo`, `executions list` (filters, paging, JSON) and `executions show` (the tree)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, Result

Here = Callable[..., Result]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, Result, Result]:
    """A database the demo ran on twice (each run stores three new executions); shared by this module's
    tests, which only read it."""
    directory: Path = tmp_path_factory.mktemp("demo")
    cli = Cli(directory, f"sqlite:///{directory / 'demo.db'}")
    return cli, cli("demo"), cli("demo")


@pytest.fixture
def here(demo: tuple[Cli, Result, Result], capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> Here:
    """The command run in this process on the demo's database."""
    def run(*args: str) -> Result:
        return demo[0].here(*args, capsys=capsys, monkeypatch=monkeypatch)
    return run


def test_the_demo_runs_twice_and_stores_three_executions_each_time(demo: tuple[Cli, Result, Result],
                                                                   here: Here) -> None:
    for done in demo[1:]:
        assert done.code == 0, done.output
        for workflow, state in (("demo-create-brand", "done"), ("demo-create-brand-and-publish", "reverted"),
                                ("demo-brand-approval", "invoking")):
            assert re.search(rf"wf_exec_\w+ +│ {workflow} +│ {state}", done.stdout), done.stdout
        assert "stepwork executions list" in done.stdout and "stepwork serve" in done.stdout
    listed = json.loads(here("executions", "list", "--json").stdout)
    assert listed["count"] == 6


def test_list_is_a_table_with_progress_and_a_footer(here: Here) -> None:
    done = here("executions", "list")
    assert done.code == 0, done.output
    header = done.stdout.splitlines()[0]
    assert all(column in header for column in ("id", "workflow", "transaction", "state", "progress", "created at"))
    assert "5 of 5 steps" in done.stdout and "1 of 3 steps" in done.stdout
    assert done.stdout.rstrip().endswith("showing 1–6 of 6")


def test_list_filters_and_pages_like_the_api(here: Here) -> None:
    reverted = json.loads(here("executions", "list", "--state", "reverted", "--json").stdout)
    assert reverted["count"] == 2
    assert {e["state"] for e in reverted["workflow_executions"]} == {"reverted"}
    two_states = json.loads(here("executions", "list", "-s", "done", "-s", "invoking", "--json").stdout)
    assert two_states["count"] == 4
    by_workflow = json.loads(here("executions", "list", "--workflow-id", "demo-brand-approval", "--json").stdout)
    assert {e["workflow_id"] for e in by_workflow["workflow_executions"]} == {"demo-brand-approval"}
    searched = json.loads(here("executions", "list", "-q", "APPROVAL", "--json").stdout)
    assert searched["count"] == 2
    page = here("executions", "list", "--limit", "2", "--offset", "2", "--order", "created_at")
    assert page.stdout.rstrip().endswith("showing 3–4 of 6")
    everything = json.loads(here("executions", "list", "--order", "created_at", "--json").stdout)
    ids = [e["id"] for e in everything["workflow_executions"]]
    assert all(i in page.stdout for i in ids[2:4]) and not any(i in page.stdout for i in ids[:2] + ids[4:])
    nothing = here("executions", "list", "--state", "failed")
    assert nothing.code == 0 and "No executions match" in nothing.stdout


def test_show_draws_the_steps_with_outputs_compensations_and_errors(demo: tuple[Cli, Result, Result],
                                                                    here: Here) -> None:
    reverted_id = re.search(r"(wf_exec_\w+) +│ demo-create-brand-and-publish", demo[2].stdout)
    assert reverted_id, demo[2].stdout
    done = here("executions", "show", reverted_id.group(1))
    assert done.code == 0, done.output
    assert re.search(r"1\. create-brand +invoke done +compensate reverted", done.stdout)
    assert re.search(r"compensated \{\"id\": \"brand_\w+\", \"object\": \"brand\", \"deleted\": true\}", done.stdout)
    assert re.search(r"3\. publish-brand-page +invoke failed / permanent_failure +compensate reverted +attempts 2",
                     done.stdout)
    assert "error (invoke) ConnectionError: The CMS is down" in done.stdout
    record = json.loads(here("executions", "show", reverted_id.group(1), "--json").stdout)["workflow_execution"]
    assert record["state"] == "reverted" and record["id"] == reverted_id.group(1)


def test_show_groups_parallel_steps(demo: tuple[Cli, Result, Result], here: Here) -> None:
    done_id = re.search(r"(wf_exec_\w+) +│ demo-create-brand +│", demo[1].stdout)
    assert done_id, demo[1].stdout
    lines = here("executions", "show", done_id.group(1)).stdout.splitlines()
    parallel = next(i for i, line in enumerate(lines) if "3. parallel" in line)
    assert "publish-brand-page" in lines[parallel + 1]
    assert any("record-audit-entry" in line for line in lines[parallel + 2:parallel + 4])


def test_list_filters_on_the_creation_time(here: Here) -> None:
    everything = json.loads(here("executions", "list", "--order", "created_at", "--json").stdout)
    times = [e["created_at"] for e in everything["workflow_executions"]]
    middle = times[3]
    before = json.loads(here("executions", "list", "--created-before", middle, "--json").stdout)
    after = json.loads(here("executions", "list", "--created-after", "2000-01-01", "--json").stdout)
    none = json.loads(here("executions", "list", "--created-after", "2999-01-01T00:00:00Z", "--json").stdout)
    assert before["count"] == sum(1 for t in times if t < middle) and 0 < before["count"] < 6
    assert (after["count"], none["count"]) == (6, 0)
    bad = here("executions", "list", "--created-after", "yesterday")
    assert bad.code == 2 and "--created-after takes an ISO-8601 date or time" in bad.stderr


def test_the_demo_suggests_commands_without_the_database_password(demo: tuple[Cli, Result, Result]) -> None:
    from stepwork.cli.config import Settings

    assert Settings(database_url="postgresql://me:s3cret@db/x").database_label == "postgresql://me:***@db/x"
    shown = re.search(r"stepwork executions show (wf_exec_\w+) --database-url (\S+)", demo[1].stdout)
    assert shown and shown.group(2) == demo[0].database_url, demo[1].stdout


def test_stale_lists_the_waiting_executions_no_live_worker_can_go_on_with(here: Here) -> None:
    # The demo's processes ended: their approvals wait, and no running process defines that workflow.
    listed = json.loads(here("executions", "list", "--stale", "--json").stdout)
    assert {(e["workflow_id"], e["state"]) for e in listed["workflow_executions"]} == {
        ("demo-brand-approval", "invoking")}
    assert listed["count"] == 2


def test_workers_shows_the_demo_processes_as_stopped(here: Here) -> None:
    workers = json.loads(here("workers", "--json").stdout)["workers"]
    assert len(workers) == 2 and {w["status"] for w in workers} == {"stopped"}
    assert {"workflow_id": "demo-brand-approval", "version": "1"} in workers[0]["workflows"]
    table = here("workers")
    assert table.code == 0 and "stopped" in table.stdout and "demo-brand-approval@1" in table.stdout
