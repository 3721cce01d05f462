"""Every failure is one line on stderr, `error: ...`, with exit code 2 (bad usage or input) or 1 (a
failed operation), and never a traceback."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Cli

CASES = [
    # (arguments, exit code, text of the one line)
    (["run", "nowhere:flow"], 2, "module 'nowhere' not found"),
    (["run", "app:missing"], 2, "no workflow 'missing' in module 'app'"),
    (["run", "app:charge"], 2, "'app:charge' is a Step, not a workflow"),
    (["run", "app:checkout", "--input", "{not json"], 2, "--input is not valid JSON"),
    (["run", "app:checkout", "--input", "@absent.json"], 2, "cannot read the input file 'absent.json'"),
    (["run", "app:checkout", "--bogus"], 2, "No such option: --bogus"),
    (["run"], 2, "Missing argument 'MODULE:WORKFLOW'"),
    (["run", "broken:flow"], 1, "importing module 'broken' failed: ZeroDivisionError"),
    (["executions", "show", "wf_exec_nope"], 1, "Workflow execution 'wf_exec_nope' was not found"),
    (["executions", "list", "--state", "bogus"], 2, "unknown state 'bogus'"),
    (["executions", "list", "--order", "color"], 2, 'Cannot order by "color"'),
    (["executions", "list", "--limit", "-1"], 2, "Invalid value for '--limit'"),
    (["executions", "list", "--database-url", "mysql://db"], 2, 'Unsupported database_url "mysql://db"'),
    (["executions", "list", "--database-url", "postgresql://nobody@127.0.0.1:1/none"], 1,
     "Cannot connect to PostgreSQL"),
    (["executions", "list", "--database-url", "sqlite:////no/such/dir/x.db"], 2, "cannot be opened"),
    (["graph", "app:drawn", "--format", "svg"], 2, "unknown format 'svg'"),
    (["serve", "--port", "70000"], 2, "Invalid value for '--port'"),
    (["keys", "revoke", "apk_unknown"], 1, 'No API key with id "apk_unknown"'),
]


@pytest.mark.parametrize(("args", "code", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_failure_is_one_line_and_an_exit_code(cli: Cli, args: list[str], code: int, message: str,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (cli.cwd / "broken.py").write_text("1 / 0\n")
    db = "--database-url" not in args and args[0] not in ("graph", "serve")
    if any(a.startswith(("app:", "broken:")) for a in args):  # imports a module: in a process of its own
        done = cli(*args, db=db)
    else:
        done = cli.here(*args, db=db, capsys=capsys, monkeypatch=monkeypatch)
    assert done.code == code, done.output
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert "Traceback" not in done.output


def test_a_bad_port_in_the_environment_is_bad_input(cli: Cli, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    done = cli.here("serve", env={"STEPWORK_PORT": "http"}, db=False, capsys=capsys, monkeypatch=monkeypatch)
    assert done.code == 2
    assert done.stderr.strip() == "error: the port from STEPWORK_PORT must be a number from 0 to 65535, got 'http'"


def test_an_unknown_key_in_pyproject_is_bad_input(cli: Cli, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (cli.cwd / "pyproject.toml").write_text('[tool.stepwork]\ndatabase = "sqlite:///x.db"\n')
    done = cli.here("executions", "list", db=False, capsys=capsys, monkeypatch=monkeypatch)
    assert done.code == 2
    assert "unknown key database in [tool.stepwork]" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_help_of_every_command_has_examples(cli: Cli, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for command in (["run"], ["graph"], ["cleanup"], ["migrate"], ["serve"], ["worker"], ["demo"],
                    ["executions", "list"], ["executions", "show"], ["keys", "create"], ["keys", "list"],
                    ["keys", "revoke"]):
        done = cli.here(*command, "--help", db=False, capsys=capsys, monkeypatch=monkeypatch)
        assert done.code == 0, done.output
        assert "Examples:" in done.stdout and f"stepwork {' '.join(command)}" in done.stdout, command


def test_the_installed_command_fails_the_same_way(cli: Cli) -> None:
    done = cli("executions", "show", "wf_exec_nope")  # python -m stepwork.cli, a process of its own
    assert (done.code, done.stdout) == (1, "")
    assert done.stderr == "error: Workflow execution 'wf_exec_nope' was not found.\n"
