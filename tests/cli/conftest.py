"""Running the ``stepwork`` command as users do: a subprocess (``python -m stepwork.cli``) in a
project directory of its own, with a SQLite file database and no STEPWORK_* variables inherited."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

# An application module the tests run: workflows that complete, fail and compensate, wait on an
# async step, retry on a durable timer, and one drawn by `graph` (parallelize, when, nested, async).
APP = textwrap.dedent('''
    from stepwork import StepResponse, WorkflowResponse, create_step, parallelize, when, workflow

    def _boom(input):
        raise RuntimeError("card declined")

    def _flaky(input, ctx):
        if ctx.attempt == 1:
            raise ConnectionError("try again")
        return {"attempt": ctx.attempt}

    reserve = create_step("reserve-stock", lambda i: {"reserved": i["qty"]}, lambda c: {"released": c["reserved"]})
    charge = create_step("charge-card", _boom, lambda c: None)
    ship = create_step({"name": "ship", "async": True}, lambda i: None)
    flaky = create_step({"name": "flaky", "max_retries": 1, "retry_interval": 0.3}, _flaky)
    email = create_step("email", lambda i: {"sent": True})
    audit = create_step("audit", lambda i: {"audited": True})

    @workflow({"name": "checkout", "retention_time": 3600})
    def checkout(input):
        return WorkflowResponse({"reserved": reserve(input), "charged": charge(input)})

    @workflow({"name": "reserve", "retention_time": 3600})
    def reserve_only(input):
        return WorkflowResponse(reserve(input))

    @workflow({"name": "order", "retention_time": 3600})
    def order(input):
        return WorkflowResponse(ship(reserve(input)))

    @workflow({"name": "retrying", "retention_time": 3600})
    def retrying(input):
        return WorkflowResponse(flaky(input))

    @workflow("drawn")
    def drawn(input):
        r = reserve(input)
        e, a = parallelize(email(r), audit(r))
        when(input, lambda i: i.get("notify")).then(lambda: ship(r))
        return WorkflowResponse(reserve_only.run_as_step(input))

    @workflow({"name": "expiring", "retention_time": 0})
    def expiring(input):
        return WorkflowResponse(reserve(input))
''')


@dataclass(frozen=True)
class Result:
    """What one command did."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the commands: no STEPWORK_* of the caller's, no colour, wide lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPWORK_")}
    env.update({"PYTHONUNBUFFERED": "1", "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})
    env.update(extra or {})
    return env


class Cli:
    """``cli("run", "app:checkout", ...)`` runs the command in the project directory."""

    def __init__(self, cwd: Path, database_url: str) -> None:
        self.cwd = cwd
        self.database_url = database_url

    def __call__(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 30,
                 db: bool = True) -> Result:
        argv = [sys.executable, "-m", "stepwork.cli", *args]
        if db and "--database-url" not in args and "-d" not in args:
            argv += ["--database-url", self.database_url]
        done = subprocess.run(argv, cwd=self.cwd, env=clean_env(env), capture_output=True, text=True,
                              timeout=timeout)
        return Result(done.returncode, done.stdout, done.stderr)

    def here(self, *args: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
             env: Mapping[str, str] | None = None, db: bool = True) -> Result:
        """The command run in this process (for what imports no application module: faster)."""
        from stepwork.cli.main import run_cli

        monkeypatch.chdir(self.cwd)
        for key in [k for k in os.environ if k.startswith("STEPWORK_")]:
            monkeypatch.delenv(key)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        argv = list(args)
        if db and "--database-url" not in args and "-d" not in args:
            argv += ["--database-url", self.database_url]
        capsys.readouterr()
        code = run_cli(argv)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """The command started in the background (stdout and stderr to pipes)."""
        return subprocess.Popen([sys.executable, "-m", "stepwork.cli", *args], cwd=self.cwd, env=clean_env(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory holding the application module ``app.py``."""
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


@pytest.fixture
def cli(project: Path) -> Cli:
    """The command, run in ``project`` against its SQLite file ``cli.db``."""
    return Cli(project, f"sqlite:///{project / 'cli.db'}")
