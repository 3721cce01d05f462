"""The long-running commands as real processes: `worker` finishes what waits on a timer and stops on
SIGTERM; `serve` answers on the free port it reports (`--port 0`) with an API key, stops on Ctrl-C
with a subscribed client, and reports a port in use in one line; `keys` create, list and revoke."""

from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
import subprocess
import threading
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


def _readline(process: subprocess.Popen[str], deadline: float = DEADLINE) -> str:
    """The next line of the process's stdout, failing (and stopping the process) after ``deadline`` s."""
    assert process.stdout is not None
    stream = process.stdout
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(deadline)
    if not got:
        process.kill()
        raise AssertionError(f"no line from the process within {deadline} s")
    return got[0]


def _serve(cli: Cli, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """``stepwork serve --port 0 ...`` started, and the base URL its banner reports once it listens."""
    server = cli.popen("serve", "--database-url", cli.database_url, "--port", "0", *args, env=env)
    banner = _readline(server)
    found = re.search(r"stepwork admin API on (http://127\.0\.0\.1:(\d+)) ", banner)
    if found is None or found.group(2) == "0":
        _, out, err = _stop(server)
        raise AssertionError(f"no listening banner: {banner!r}\n{out}\n{err}")
    return server, found.group(1)


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
    assert "stepwork worker running" in _readline(worker)
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
    server, base = _serve(cli, "--app", "stepwork.cli.demo_workflows")
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
    server, base = _serve(cli, env={"STEPWORK_API_KEYS": "sk_static_one"})
    try:
        _eventually(lambda: _answers(f"{base}/health"), "the server answers /health")
        status, body = _get(f"{base}/admin/workflows-executions?limit=10", secret.group(1))
        assert status == 200 and body["count"] == 3, body
        assert _get(f"{base}/admin/workflows-executions", "sk_static_one")[0] == 200
        assert _get(f"{base}/admin/workflows-executions", "sk_wrong")[0] == 401
    finally:
        code, out, err = _stop(server)
    assert f"stepwork admin API on {base}" not in out  # (printed once, read by _serve)
    assert "no API key exists" not in err
    assert "Traceback" not in out + err


def _answers(url: str) -> bool:
    try:
        return _get(url)[0] == 200
    except OSError:
        return False


def _subscribe(base: str, key: str) -> socket.socket:
    """An open SSE stream of the server (a raw socket: the test holds it open), once subscribed."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=DEADLINE)
    sock.sendall(f"GET /admin/workflows-executions/anything/subscribe HTTP/1.1\r\nHost: {host}\r\n"
                 f"Authorization: Bearer {key}\r\n\r\n".encode())
    received = b""
    while b": subscribed" not in received:
        chunk = sock.recv(4096)
        assert chunk, f"the stream ended: {received!r}"
        received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received
    return sock


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_promptly_with_a_subscribed_client(cli: Cli, sig: int) -> None:
    server, base = _serve(cli, env={"STEPWORK_API_KEYS": "sk_static_one"})
    try:
        stream = _subscribe(base, "sk_static_one")
    except BaseException:
        _stop(server)
        raise
    with stream:
        began = time.monotonic()
        code, out, err = _stop(server, sig)
        took = time.monotonic() - began
        stream.settimeout(5)
        rest = b""
        while chunk := stream.recv(4096):  # the server ended the stream (the connection is closed)
            rest += chunk
    assert took < 10, f"took {took:.1f} s to stop:\n{out}\n{err}"
    assert code == 0, out + err
    assert "stepwork admin API stopped" in out  # printed once the app's lifespan stopped the engine
    assert "Traceback" not in out + err and "timeout graceful shutdown exceeded" not in err
    assert rest.endswith(b"0\r\n\r\n"), rest  # the chunked stream was ended, not cut


def test_serve_reports_a_port_in_use_in_one_line(cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("serve", "--port", str(port), env={"STEPWORK_API_KEYS": "sk_static_one"}, timeout=DEADLINE)
    assert done.code == 1, done.output
    assert done.stdout == ""  # no "listening" banner
    assert done.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; another process uses it: choose "
        "another port with --port"], done.stderr
