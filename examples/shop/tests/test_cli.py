"""The shop through the ``stepwork`` command, as its users run it: ``migrate`` and ``serve --app``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[3]


def _env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPWORK_")}
    env.update({"STEPWORK_DATABASE_URL": database_url, "STEPWORK_API_KEYS": "sk_shop_cli_" + "x" * 16,
                "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "COLUMNS": "200"})
    return env


def test_migrate_creates_the_brand_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    done = subprocess.run([sys.executable, "-m", "stepwork.cli", "migrate", "--app", "examples.shop.app"],
                          cwd=ROOT, env=_env(url), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "module brand: 0001_create_brand" in done.stdout
    again = subprocess.run([sys.executable, "-m", "stepwork.cli", "migrate", "--app", "examples.shop.app"],
                           cwd=ROOT, env=_env(url), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "module brand: 0001_create_brand" in again.stdout


def test_a_database_url_beside_an_app_that_sets_its_own_is_refused(tmp_path: Path) -> None:
    env = _env(f"sqlite:///{tmp_path / 'shop.db'}")
    done = subprocess.run([sys.executable, "-m", "stepwork.cli", "serve", "--app", "examples.shop.app",
                           "--database-url", f"sqlite:///{tmp_path / 'other.db'}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "sets its own database" in done.stderr and "Traceback" not in done.stderr


def test_serve_runs_the_shop(tmp_path: Path) -> None:
    server = subprocess.Popen([sys.executable, "-m", "stepwork.cli", "serve", "--app", "examples.shop.app",
                               "--port", "0"], cwd=ROOT, env=_env(f"sqlite:///{tmp_path / 'shop.db'}"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + 60
        banner = ""
        while "http://" not in banner and time.monotonic() < deadline and server.poll() is None:
            banner = server.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)", banner)
        assert found, f"no banner: {banner!r}"
        with httpx.Client(base_url=found.group(1), timeout=30) as client:
            created = client.post("/brands", json={"name": "Acme"})
            assert created.status_code == 200, created.text
            brand_id = created.json()["brand"]["id"]
            assert client.get(f"/brands/{brand_id}").json()["brand"]["name"] == "Acme"
            executions = client.get("/admin/workflows-executions", params={"workflow_id": "create-brand"},
                                    headers={"Authorization": "Bearer sk_shop_cli_" + "x" * 16}).json()
            assert [e["state"] for e in executions["workflow_executions"]] == ["done"]
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
