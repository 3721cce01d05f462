"""`stepwork run`: the live lines of each step, the result or the errors, the exit code, waiting."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.conftest import Cli


def test_a_run_that_completes_prints_its_result_and_execution_id(cli: Cli) -> None:
    done = cli("run", "app:reserve_only", "--input", '{"qty": 2}')
    assert done.code == 0, done.output
    assert "✔ reserve-stock done" in done.stdout
    assert re.search(r"state\s+done", done.stdout)
    assert '"reserved": 2' in done.stdout
    execution_id = re.search(r"execution\s+(wf_exec_\w+)", done.stdout)
    assert execution_id, done.stdout
    shown = cli("executions", "show", execution_id.group(1), "--json")
    assert json.loads(shown.stdout)["workflow_execution"]["state"] == "done"


def test_a_failing_run_shows_its_compensation_and_exits_1(cli: Cli) -> None:
    done = cli("run", "app:checkout", "--input", '{"qty": 1}')
    assert done.code == 1, done.output
    lines = done.stdout.splitlines()
    order = [next(i for i, line in enumerate(lines) if text in line) for text in
             ("✔ reserve-stock done", "✘ charge-card failed: card declined", "↺ compensating",
              "↺ charge-card compensated", "↺ reserve-stock compensated", "finished: reverted")]
    assert order == sorted(order), done.stdout
    assert re.search(r"state\s+reverted", done.stdout)
    assert "charge-card (invoke): RuntimeError: card declined" in done.stdout
    assert "Traceback" not in done.output


def test_the_workflow_may_be_named_by_its_registered_name(cli: Cli) -> None:
    done = cli("run", "app:reserve", "--input", '{"qty": 3}')  # "reserve" is the name; the attribute is reserve_only
    assert done.code == 0, done.output
    assert '"reserved": 3' in done.stdout


def test_input_from_a_file_and_a_chosen_transaction_id(cli: Cli, project: Path) -> None:
    (project / "input.json").write_text('{"qty": 7}')
    done = cli("run", "app:reserve_only", "--input", "@input.json", "--transaction-id", "order-7")
    assert done.code == 0, done.output
    assert '"reserved": 7' in done.stdout
    listed = json.loads(cli("executions", "list", "--transaction-id", "order-7", "--json").stdout)
    assert [e["workflow_id"] for e in listed["workflow_executions"]] == ["reserve"]


def test_without_wait_a_waiting_run_prints_its_state_transaction_and_what_it_waits_on(cli: Cli) -> None:
    done = cli("run", "app:order", "--input", '{"qty": 1}', "--transaction-id", "order-1")
    assert done.code == 0, done.output
    assert "… ship waits for its response" in done.stdout
    assert re.search(r"state\s+invoking", done.stdout)
    assert re.search(r"transaction\s+order-1", done.stdout)
    assert "waiting on   ship" in done.stdout


def test_with_wait_the_command_stays_until_a_retry_timer_finishes_the_run(cli: Cli) -> None:
    no_wait = cli("run", "app:retrying", "--input", "{}")
    assert re.search(r"state\s+invoking", no_wait.stdout), no_wait.output
    waited = cli("run", "app:retrying", "--input", "{}", "--wait")
    assert waited.code == 0, waited.output
    assert waited.stdout.count("▸ flaky started") == 2  # the retry, fired by this process's timer loop
    assert "run resumed" in waited.stdout
    assert "✔ flaky done" in waited.stdout
    assert re.search(r"state\s+done", waited.stdout)
    assert '"attempt": 2' in waited.stdout
