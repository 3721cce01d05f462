"""The long-running commands as real processes: `worker` finishes what waits on a timer and stops on
SIGTERM; `serve` answers on a free port with an API key; `keys` create, list and revoke."""

from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from tests.cli.conftest import Cli

DEADLINE = 20.0


def _eventually(check: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline} s: {what}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    process.send_signal(sig)
    try:
        out, err = process.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"the process did not stop on signal {sig}:\n{out}\n{err}") from None
    return process.returncode, out, err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_worker_finishes_a_run_waiting_on_a_timer_and_stops_on_sigterm(cli: Cli) -> None:
    started = cli("run", "app:retrying", "--input", "{}", "--transaction-id", "retry-1")
    assert re.search(r"state\s+invoking", started.stdout), started.output
    worker = cli.popen("worker", "--app", "app", "--database-url", cli.database_url)
    try:
        def finished() -> bool:
            listed = json.loads(cli("executions", "list", "-t", "retry-1", "--json").stdout)
            return [e["state"] for e in listed["workflow_executions"]] == ["done"]
        _eventually(finished, "the worker finishes the waiting run")
    finally:
        code, out, err = _stop(worker)
    assert code == 0, err
    assert "stepwork worker running on" in out and "workflows: " in out and "retrying" in out
    assert out.rstrip().endswith("worker stopped")
    assert "Traceback" not in out + err


def test_worker_stops_quietly_on_ctrl_c(cli: Cli) -> None:
    worker = cli.popen("worker", "--database-url", cli.database_url)
    assert worker.stdout is not None
    assert "stepwork worker running" in worker.stdout.readline()
    code, out, err = _stop(worker, signal.SIGINT)
    assert code == 0 and "worker stopped" in out and "Traceback" not in err


def test_keys_are_created_listed_and_revoked_and_never_stored_in_clear(cli: Cli) -> None:
    created = cli("keys", "create", "ci")
    assert created.code == 0, created.output
    key_id = re.search(r"Created API key (apk_\w+) \(ci\)\.", created.stdout)
    secret = re.search(r"^(sk_\S+)$", created.stdout, re.M)
    assert key_id and secret, created.stdout
    assert "Store this secret now" in created.stderr
    listed = cli("keys", "list")
    assert re.search(rf"{key_id.group(1)} +│ ci +│ {re.escape(secret.group(1)[:10])}… .* active", listed.stdout)
    assert secret.group(1) not in listed.stdout
    with sqlite3.connect(cli.cwd / "cli.db") as conn:
        dump = "\n".join(conn.iterdump())
    assert secret.group(1) not in dump
    revoked = cli("keys", "revoke", key_id.group(1))
    assert revoked.stdout.strip() == f"Revoked API key {key_id.group(1)} (ci)."
    as_json = json.loads(cli("keys", "list", "--json").stdout)["api_keys"]
    assert [(k["id"], k["revoked_at"] is not None) for k in as_json] == [(key_id.group(1), True)]


def _get(url: str, key: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_serve_answers_with_a_key_and_warns_when_there_is_none(cli: Cli) -> None:
    assert cli("demo").code == 0
    port = _free_port()
    server = cli.popen("serve", "--app", "stepwork.cli.demo_workflows", "--database-url", cli.database_url,
                       "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:  # the server's output is shown when something goes wrong
        def up() -> bool:
            try:
                return _get(f"{base}/health")[0] == 200
            except OSError:
                return server.poll() is not None  # stop waiting if the server died
        _eventually(up, "the server answers /health")
        assert server.poll() is None, "the server stopped"
        assert _get(f"{base}/admin/workflows-executions")[0] == 401
    except BaseException as exc:
        _, out, err = _stop(server)
        raise AssertionError(f"{exc}\nserver output:\n{out}\n{err}") from exc
    _, _, err = _stop(server)
    assert "warning: no API key exists, so nobody can call the admin API" in err

    created = cli("keys", "create", "test")
    secret = re.search(r"^(sk_\S+)$", created.stdout, re.M)
    assert secret, created.output
    server = cli.popen("serve", "--database-url", cli.database_url, "--port", str(port),
                       env={"STEPWORK_API_KEYS": "sk_static_one"})
    try:
        _eventually(lambda: _answers(f"{base}/health"), "the server answers /health")
        status, body = _get(f"{base}/admin/workflows-executions?limit=10", secret.group(1))
        assert status == 200 and body["count"] == 3, body
        assert _get(f"{base}/admin/workflows-executions", "sk_static_one")[0] == 200
        assert _get(f"{base}/admin/workflows-executions", "sk_wrong")[0] == 401
    finally:
        code, out, err = _stop(server)
    assert f"stepwork admin API on http://127.0.0.1:{port}" in out
    assert "no API key exists" not in err
    assert "Traceback" not in out + err


def _answers(url: str) -> bool:
    try:
        return _get(url)[0] == 200
    except OSError:
        return False
