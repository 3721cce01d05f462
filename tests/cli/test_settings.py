"""Settings precedence: command-line option > environment > `[tool.stepwork]` in ./pyproject.toml >
defaults; and the application module named by any of them is imported."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepwork.cli.config import Settings, resolve
from stepwork.cli.errors import CliError
from tests.cli.conftest import Cli


def _pyproject(directory: Path, **values: object) -> None:
    body = "\n".join(f"{k} = {v!r}" if isinstance(v, int) else f'{k} = "{v}"' for k, v in values.items())
    (directory / "pyproject.toml").write_text(f"[project]\nname = 'x'\n\n[tool.stepwork]\n{body}\n")


def test_defaults(tmp_path: Path) -> None:
    assert resolve(environ={}, directory=tmp_path) == Settings(None, None, "127.0.0.1", 9000)


def test_pyproject_beats_defaults(tmp_path: Path) -> None:
    _pyproject(tmp_path, app="myapp", database_url="sqlite:///p.db", host="0.0.0.0", port=8001)
    assert resolve(environ={}, directory=tmp_path) == Settings("myapp", "sqlite:///p.db", "0.0.0.0", 8001)


def test_environment_beats_pyproject(tmp_path: Path) -> None:
    _pyproject(tmp_path, app="myapp", database_url="sqlite:///p.db", host="0.0.0.0", port=8001)
    env = {"STEPWORK_APP": "envapp", "STEPWORK_DATABASE_URL": "sqlite:///e.db", "STEPWORK_HOST": "::1",
           "STEPWORK_PORT": "8002", "STEPWORK_API_KEYS": " sk_a, ,sk_b "}
    assert resolve(environ=env, directory=tmp_path) == Settings("envapp", "sqlite:///e.db", "::1", 8002)
    # STEPWORK_API_KEYS is read by `serve` with the HTTP layer's one parser.
    from stepwork.http.keys import static_keys_from_env
    assert static_keys_from_env(env) == ["sk_a", "sk_b"]


def test_options_beat_the_environment(tmp_path: Path) -> None:
    _pyproject(tmp_path, port=8001)
    env = {"STEPWORK_APP": "envapp", "STEPWORK_DATABASE_URL": "sqlite:///e.db", "STEPWORK_PORT": "8002"}
    got = resolve(app="optapp", database_url="sqlite:///o.db", host="10.0.0.1", port=8003, environ=env,
                  directory=tmp_path)
    assert got == Settings("optapp", "sqlite:///o.db", "10.0.0.1", 8003)


@pytest.mark.parametrize("content, message", [
    ("[tool.stepwork]\nport = 'x'\n", "the port from [tool.stepwork] port must be a number"),
    ("[tool.stepwork]\napp = 3\n", "app in [tool.stepwork]"),
    ("[tool.stepwork\n", "cannot read"),
])
def test_a_bad_pyproject_is_bad_input(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(content)
    with pytest.raises(CliError, match=message.replace("[", r"\[").replace("]", r"\]")) as caught:
        resolve(environ={}, directory=tmp_path)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("source", ["option", "environment", "pyproject", "default"])
def test_the_command_uses_the_database_its_settings_name(cli: Cli, source: str, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    urls = {name: f"sqlite:///{cli.cwd / name}.db" for name in ("option", "environment", "pyproject")}
    _pyproject(cli.cwd, database_url=urls["pyproject"])
    env = {"STEPWORK_DATABASE_URL": urls["environment"]}
    args = ["--database-url", urls["option"]]
    if source in ("environment", "pyproject", "default"):
        args = []
    if source in ("pyproject", "default"):
        env = {}
    if source == "default":
        (cli.cwd / "pyproject.toml").unlink()
    done = cli.here("executions", "list", *args, env=env, db=False, capsys=capsys, monkeypatch=monkeypatch)
    assert done.code == 0, done.output
    if source == "default":
        assert "in sqlite:///.stepwork/stepwork.db (the default)" in done.stdout
        assert (cli.cwd / ".stepwork" / "stepwork.db").is_file()
    else:
        assert f"in {urls[source]}." in done.stdout
        assert (cli.cwd / f"{source}.db").is_file()


def test_the_app_of_pyproject_or_the_environment_is_imported(cli: Cli) -> None:
    _pyproject(cli.cwd, app="app", database_url=cli.database_url)
    done = cli("run", "reserve", "--input", '{"qty": 4}', db=False)  # a registered name, from the app
    assert done.code == 0, done.output
    assert '"reserved": 4' in done.stdout
    (cli.cwd / "pyproject.toml").unlink()
    done = cli("run", "reserve", "--input", '{"qty": 5}', env={"STEPWORK_APP": "app"})
    assert done.code == 0, done.output
    assert '"reserved": 5' in done.stdout
