"""PostgreSQL checks for the bench runner, runnable in a child process.

The runner (``run.py``) calls these through ``python -m benchmarks.databases check|ensure URL`` rather
than importing psycopg itself: a bench process's ``ru_maxrss`` starts from the high-water mark of the
process that spawned it (Linux carries it across fork and exec), so the runner must stay small for
the children's ``peak_rss_mb`` to be their own.

    python -m benchmarks.databases check URL    # prints why PostgreSQL at URL cannot be used, or nothing
    python -m benchmarks.databases ensure URL   # creates URL's database if missing; prints a problem, or nothing
"""

from __future__ import annotations

import os
import sys

__all__ = ["PG_ADMIN_URL", "ensure_database", "pg_problem"]

PG_ADMIN_URL = os.environ.get("STEPWORK_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def pg_problem(url: str = PG_ADMIN_URL, timeout: int = 3) -> str | None:
    """Why PostgreSQL at ``url`` cannot be used (a readable note), or None if it can."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=timeout) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return (f"PostgreSQL is not reachable at {url} ({_first_line(exc)}); `make services` (scripts/services.sh, "
                "run by `make test`) starts it, or set STEPWORK_BENCH_PG_URL to a server where the user may "
                "create databases.")
    return None


def ensure_database(url: str) -> str | None:
    """Create the database ``url`` names if it is missing (connecting to ``postgres`` on the same
    server); a problem note, or None."""
    import psycopg

    base, _, name = url.rpartition("/")
    name = name.split("?", 1)[0]
    try:
        with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=3) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        return f"cannot create the database {name!r} at {base} ({_first_line(exc)})"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("check", "ensure"):
        print(__doc__, file=sys.stderr)
        return 2
    problem = pg_problem(argv[1]) if argv[0] == "check" else ensure_database(argv[1])
    print(problem or "")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
