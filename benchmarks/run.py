"""Run the peer workloads on stepwork (in memory and stored), optionally beside Medusa and DBOS.

    python -m benchmarks.run                      # everything below, each workload in its own process
    python -m benchmarks.run memory               # W1..W5 in memory
    python -m benchmarks.run stored               # W1/W2 on SQLite and PostgreSQL, W6 on both, W7; retained too
    python -m benchmarks.run W1 W3 W1-sqlite      # only these (each in its own process)
    python -m benchmarks.run W1                   # one workload, in this process
    python -m benchmarks.run --with-medusa        # Medusa's bench.mjs too, beside W1..W5
    python -m benchmarks.run stored --with-dbos   # DBOS's bench.py too, beside the stored W1/W2
    python -m benchmarks.run W1-sqlite --profile 10   # cProfile of the timed runs, top 10 by tottime
    python -m benchmarks.run W8 --with-dbos       # W8: queued runs via 1, 2, 4 worker processes (not by default)

Workloads: W1..W5 in memory (``benchmarks/workloads.py``); W1-sqlite, W2-sqlite, W1-postgres,
W2-postgres (W1/W2 as stored workflows), W6 and W6-postgres (1,000-step vs 10-step stored workflow)
and W7 (10,000 waiting executions completed from outside), in ``benchmarks/stored.py``; and the
``-retained`` variants W1-sqlite-retained, W2-sqlite-retained, W1-postgres-retained,
W2-postgres-retained, W6-retained, W6-postgres-retained (the same with ``retention_time``: finished
executions stay in the database). Every stored line also carries the statements and commits per
step, counted in an untimed pass after the timed runs. The PostgreSQL ones need the server of
``STEPWORK_BENCH_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``, the one
``make test`` starts); if it cannot be reached they are skipped with a note.

Every workload prints one JSON line on stdout, in the shape of the peer benches
(``shared/peers/README.md``; ``mode`` says in-memory, durable-sqlite or durable-postgres); summary
tables (medians over ``--reps``) go to stderr, with the ratios to the peers and the targets.
``--out FILE`` appends every line, tagged with ``rep``, to FILE. Exit status 1 if a workload reports
``ok: false`` or a bench process fails (a skipped workload is not a failure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script (e.g. from shared/peers/run_all.py --extra)
    sys.path.insert(0, str(ROOT))

MEMORY = ["W1", "W2", "W3", "W4", "W5"]
STORED = ["W1-sqlite", "W1-sqlite-retained", "W2-sqlite", "W2-sqlite-retained",
          "W1-postgres", "W1-postgres-retained", "W2-postgres", "W2-postgres-retained",
          "W6", "W6-retained", "W6-postgres", "W6-postgres-retained", "W7",
          "W4-postgres"]  # W4-postgres: benchmarks/w4.py
HTTP = ["W9-sqlite", "W9-postgres"]  # the admin API over 100,000 executions: not in the default set (~1 min each)
# W8 (benchmarks/w8.py): 20,000 queued runs drained by 1, 2, 4 worker processes; not in the default set
SCALE = ["W8-1w", "W8-2w", "W8-4w"]
SCALE_IO = ["W8-io-1w", "W8-io-2w", "W8-io-4w"]
ALL = MEMORY + STORED
GROUPS = {"memory": MEMORY, "stored": STORED, "http": HTTP, "all": ALL, "w8": SCALE, "w8-io": SCALE_IO}
DEFAULT_MEDUSA_PREFIX = "/work/peers-scratch/medusa"
DEFAULT_MEDUSA_BENCH = ROOT.parent / "shared" / "peers" / "medusa" / "bench.mjs"
DEFAULT_DBOS_PYTHON = "/work/peers-scratch/venv/bin/python"
DEFAULT_DBOS_BENCH = ROOT.parent / "shared" / "peers" / "dbos" / "bench.py"
DEFAULT_DBOS_PG_URL = "postgresql://postgres@127.0.0.1:5432/dbos_bench"
MEDUSA_PEER = "medusa-workflows-sdk"
SKIPPED = 3  # exit status of a bench process whose workloads were all skipped (database unreachable)

# The targets of the issue: stepwork runs/s at least this many times Medusa's, and W3's overhead.
RATIO_TARGETS = {"W1": 25.0, "W2": 15.0, "W4": 15.0, "W5": 12.0}
W3_OVERHEAD_TARGET_US = 50.0
# ... and for the stored workloads ("Durable engine", performance).
SQLITE_ABOVE_MEMORY_TARGET_US = 30.0   # stored on SQLite: <= 30 us per step above the in-memory path
PG_STEP_TARGET_US = 350.0              # stored on PostgreSQL: <= 350 us per step
DBOS_RATIO_TARGET = 8.0                # stored on PostgreSQL: runs/s >= 8x DBOS on the same database
W4_DBOS_RATIO_TARGET = 20.0            # W4 stored on PostgreSQL: runs/s >= 20x DBOS
W6_RATIO_TARGET = 1.3                  # 1,000-step us/step <= 1.3x the 10-step figure
W6_LONG = 1000
W7_PEAK_RSS_TARGET_MB = 300.0          # 10,000 waiting executions: peak RSS <= 300 MB


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


RETAINED = "-retained"


def is_postgres(w: str) -> bool:
    return twin(w).endswith("-postgres")


def twin(w: str) -> str:
    """The workload without retention of a ``-retained`` one (``W1-sqlite-retained`` -> ``W1-sqlite``)."""
    return w.removesuffix(RETAINED)


def key_of(rec: dict[str, Any]) -> str:
    """The workload id (as given on the command line) of a JSON line of any peer."""
    w, mode = str(rec["workload"]), rec.get("mode", "in-memory")
    backend = mode[len("durable-"):] if mode.startswith("durable-") else ""
    if backend and w in ("W1", "W2", "W4"):
        w = f"{w}-{backend}"
    elif backend == "postgres" and w == "W6":
        w = "W6-postgres"
    elif backend and w == "W9":
        return f"W9-{backend}"
    return w + RETAINED if rec.get("retained") else w


def peer_of(rec: dict[str, Any]) -> str:
    peer = str(rec.get("peer", ""))
    if peer == "stepwork":
        return "stepwork"
    return "dbos" if peer.startswith("dbos") else "medusa"


# --------------------------------------------------------------------------------- in this process
def run_in_process(workloads: list[str], scale: float, profile: int = 0) -> tuple[list[dict[str, Any]], list[str]]:
    """Run the workloads here, one event loop each, printing each JSON line as it is ready.

    Returns the lines and the workloads skipped (a database they need is unreachable)."""
    from benchmarks.workloads import WORKLOADS, record

    table = dict(WORKLOADS)
    if any(w in STORED for w in workloads):  # the engine and the stored workflows load only when needed
        from benchmarks.stored import STORED_WORKLOADS

        table.update(STORED_WORKLOADS)
        from benchmarks.w4 import W4_WORKLOADS

        table.update(W4_WORKLOADS)
    if any(w in HTTP for w in workloads):
        from benchmarks.w9 import W9_WORKLOADS

        table.update(W9_WORKLOADS)
    if any(w in SCALE + SCALE_IO for w in workloads):
        from benchmarks.w8 import W8_WORKLOADS

        table.update(W8_WORKLOADS)
    out, skipped = [], []
    for w in workloads:
        profiler = _start_profile(w) if profile else None
        try:
            rec = record(asyncio.run(table[w](scale)))
        except Exception as exc:
            from benchmarks.stored import Unavailable

            if not isinstance(exc, Unavailable):
                raise
            log(f"{w}: skipped: {exc}")
            skipped.append(w)
            continue
        finally:
            if profiler is not None:
                _print_profile(w, profiler, profile)
        print(json.dumps(rec), flush=True)
        out.append(rec)
    return out, skipped


def _start_profile(w: str) -> Any:
    """A cProfile.Profile: enabled around the timed runs only for the stored workloads, around the
    whole workload (warm-up included) for the in-memory ones."""
    import cProfile

    profiler = cProfile.Profile()
    if w in STORED:
        import benchmarks.stored as stored

        stored.PROFILER = profiler
    else:
        profiler.enable()
    return profiler


def _print_profile(w: str, profiler: Any, top: int) -> None:
    import io
    import pstats

    profiler.disable()
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(top)
    scope = "timed runs" if w in STORED else "whole workload, warm-up included"
    log(f"--- cProfile of {w} ({scope}), top {top} by tottime ---\n{buf.getvalue().rstrip()}")


# ------------------------------------------------------------------------------------ subprocesses
def run_process(cmd: list[str], label: str, timeout: float,
                env: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], bool]:
    """Run one bench process; return the JSON lines it printed and whether it exited cleanly."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        log(f"  {label}: TIMEOUT after {timeout:.0f}s")
        return [], False
    lines = [json.loads(line) for line in p.stdout.splitlines() if line.strip().startswith("{")]
    wall = time.perf_counter() - t0
    if p.returncode == SKIPPED and not lines:
        log(f"  {label}: skipped ({(p.stderr or '').strip().splitlines()[-1:] or ['no reason given']})")
        return [], True
    if p.returncode == 1 and lines and not all(r.get("ok", False) for r in lines):
        log(f"  {label}: {wall:.1f}s, NOT OK (see its line and the summary)")  # a failed check, not a crash
        return lines, True
    if p.returncode != 0 or not lines:
        log(f"  {label}: FAILED (exit {p.returncode}, {len(lines)} line(s), {wall:.1f}s)")
        tail = (p.stderr or "").splitlines()[-15:]
        if tail:
            log("    " + "\n    ".join(tail))
        return lines, False
    log(f"  {label}: {wall:.1f}s")
    return lines, True


def stepwork_cmd(w: str, scale: float) -> list[str]:
    return [sys.executable, "-m", "benchmarks.run", w, "--runs-scale", repr(scale)]


class Medusa:
    """Where Medusa's bench and installation are, and whether they can run."""

    def __init__(self) -> None:
        self.prefix = Path(os.environ.get("MEDUSA_PREFIX") or DEFAULT_MEDUSA_PREFIX)
        self.bench = Path(os.environ.get("MEDUSA_BENCH") or DEFAULT_MEDUSA_BENCH)
        self.node = shutil.which("node")
        self.sdk_package = self.prefix / "node_modules" / "@medusajs" / "workflows-sdk" / "package.json"

    def problem(self) -> str | None:
        """Why Medusa cannot run here, or None."""
        peers = self.bench.parent.parent
        install = (f"  mkdir -p {self.prefix}\n"
                   f"  cp {peers}/medusa/package.json {peers}/medusa/package-lock.json {self.prefix}/\n"
                   f"  (cd {self.prefix} && npm ci --no-audit --no-fund)\n"
                   f"or point MEDUSA_PREFIX at an existing installation (Node.js 20+ with npm; see "
                   f"{peers}/README.md, 'Set up from scratch').")
        if self.node is None:
            return "Node.js (`node`) is not on PATH; Medusa's bench needs Node.js 20+.\n" + install
        if not self.bench.is_file():
            return (f"Medusa's bench script is missing: {self.bench} (set MEDUSA_BENCH to the path of "
                    "shared/peers/medusa/bench.mjs).")
        if not self.sdk_package.is_file():
            return (f"Medusa 2.21.2 is not installed at MEDUSA_PREFIX={self.prefix} "
                    f"(no {self.sdk_package.relative_to(self.prefix)}). Install it with:\n" + install)
        return None

    def cmd(self, w: str) -> list[str]:
        return [self.node or "node", str(self.bench), w]

    def env(self) -> dict[str, str]:
        return {**os.environ, "MEDUSA_PREFIX": str(self.prefix)}


class Dbos:
    """Where DBOS's bench (``shared/peers/dbos/bench.py``) and its venv are, and whether they can run.

    ``DBOS_PYTHON`` (default the peers' venv, ``/work/peers-scratch/venv/bin/python``) runs
    ``DBOS_BENCH``; ``DBOS_BENCH_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/dbos_bench``)
    is its PostgreSQL database, created here if missing."""

    def __init__(self) -> None:
        self.python = Path(os.environ.get("DBOS_PYTHON") or DEFAULT_DBOS_PYTHON)
        self.bench = Path(os.environ.get("DBOS_BENCH") or DEFAULT_DBOS_BENCH)
        self.pg_url = os.environ.get("DBOS_BENCH_PG_URL") or DEFAULT_DBOS_PG_URL

    def problem(self) -> str | None:
        """Why DBOS cannot run here, or None."""
        peers = self.bench.parent.parent
        python = self.python if self.python.parent.name == "bin" else Path(DEFAULT_DBOS_PYTHON)
        venv = python.parent.parent
        install = (f"Set it up as {peers}/README.md says:\n"
                   f"  python3 -m venv {venv} && {venv}/bin/pip install -r {peers}/requirements.txt\n"
                   "or point DBOS_PYTHON at a Python with dbos 3.4.0 installed.")
        if not self.bench.is_file():
            return f"DBOS's bench script is missing: {self.bench} (set DBOS_BENCH to shared/peers/dbos/bench.py)."
        if not self.python.exists():
            return f"The DBOS venv is missing (no {self.python}). " + install
        try:
            p = subprocess.run([str(self.python), "-c", "import dbos"], capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{self.python} cannot import dbos ({exc}). " + install
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["?"])[-1]
            return f"{self.python} cannot import dbos ({last}). " + install
        return None

    def ensure_pg_database(self) -> str | None:
        """Create the PostgreSQL database of ``pg_url`` if it is missing; a problem note, or None."""
        return pg_in_child("ensure", self.pg_url)

    def cmd(self, w: str) -> list[str]:
        workload, _, db = twin(w).partition("-")
        return [str(self.python), str(self.bench), workload, "--db", db]

    def env(self) -> dict[str, str]:
        return {**os.environ, "DBOS_BENCH_PG_URL": self.pg_url}


DBOS_WORKLOADS = ("W1-sqlite", "W2-sqlite", "W1-postgres", "W2-postgres", "W4-postgres")


def dbos_beside(w: str, workloads: list[str]) -> bool:
    """Whether DBOS's bench runs beside ``w``: beside each stored W1/W2, and beside a ``-retained`` one
    when its twin is not in the run (DBOS keeps its workflows either way; its lines count for both)."""
    return w in DBOS_WORKLOADS or (twin(w) in DBOS_WORKLOADS and twin(w) not in workloads)


def pg_in_child(action: str, url: str) -> str | None:
    """``benchmarks.databases`` ``check`` or ``ensure`` in a child process (psycopg stays out of this
    one: its children's ``ru_maxrss`` would start from this process's high-water mark)."""
    try:
        p = subprocess.run([sys.executable, "-m", "benchmarks.databases", action, url], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the PostgreSQL check could not run ({exc})"
    if p.returncode != 0:
        return f"the PostgreSQL check failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}"
    return p.stdout.strip() or None


# --------------------------------------------------------------------------------------- summary
def _median(values: list[Any]) -> float | None:
    vals = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return statistics.median(vals) if vals else None


def _fmt(v: float | None, nd: int = 1) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.{nd}f}"


def _group(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by[(peer_of(r), key_of(r))].append(r)
    return by


def _table(header: list[str], rows: list[list[str]], left: set[int]) -> list[str]:
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=False)]

    def fmt_row(cells: list[str]) -> str:
        return "  ".join(c.ljust(n) if i in left else c.rjust(n)
                         for i, (c, n) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [fmt_row(header), "  ".join("-" * n for n in widths), *(fmt_row(r) for r in rows)]


def summary(records: list[dict[str, Any]], workloads: list[str], medusa_note: str = "") -> str:
    """A readable table: per in-memory workload, stepwork vs Medusa (medians over repetitions) and the targets."""
    by = _group(records)
    workloads = [w for w in MEMORY if w in workloads]
    reps = max((len(by.get(("stepwork", w), [])) for w in workloads), default=0)
    header = ["workload", "stepwork runs/s", "us/step", "Medusa runs/s", "us/step", "ratio", "target", "met"]
    rows: list[list[str]] = []
    notes: list[str] = []
    for w in workloads:
        sw, md = by.get(("stepwork", w), []), by.get(("medusa", w), [])
        sw_rps = _median([r["runs_per_s"] for r in sw])
        md_rps = _median([r["runs_per_s"] for r in md])
        ratio = sw_rps / md_rps if sw_rps and md_rps else None
        met = "-"
        if w == "W3":
            over = _median([r.get("overhead_us_per_run") for r in sw])
            md_over = _median([r.get("overhead_us_per_run") for r in md])
            floor = _median([r.get("timer_floor_us_per_run") for r in sw])
            target = f"overhead {_fmt(over)} us <= {W3_OVERHEAD_TARGET_US:.0f}"
            if over is not None:
                met = "yes" if over <= W3_OVERHEAD_TARGET_US else "NO"
            notes.append(f"W3: stepwork timer floor {_fmt(floor)} us/run, overhead {_fmt(over)} us/run"
                         + (f"; Medusa overhead {_fmt(md_over)} us/run" if md else ""))
        elif w in RATIO_TARGETS:
            goal = RATIO_TARGETS[w]
            target = f">= {goal:.0f}x"
            if ratio is not None:
                met = "yes" if ratio >= goal else "NO"
        else:
            target = "-"
        bad = [r for r in sw + md if not r.get("ok", False)]
        if bad:
            met += f" ({len(bad)} NOT OK)"
        rows.append([w, _fmt(sw_rps), _fmt(_median([r["us_per_step"] for r in sw]), 2), _fmt(md_rps),
                     _fmt(_median([r["us_per_step"] for r in md]), 2),
                     "-" if ratio is None else f"{ratio:.1f}x", target, met])
    title = f"median of {reps} repetitions" if reps > 1 else "one repetition"
    out = [f"stepwork vs Medusa (in memory), {title}" + (f"; {medusa_note}" if medusa_note else "")]
    out += _table(header, rows, {0, 6, 7})
    out += notes
    return "\n".join(out)


def stored_summary(records: list[dict[str, Any]], workloads: list[str], dbos_note: str = "",
                   skipped: dict[str, str] | None = None) -> str:
    """The stored workloads: stepwork (and DBOS) medians, each target on a row of its own."""
    by = _group(records)
    skipped = skipped or {}
    workloads = [w for w in STORED if w in workloads]
    reps = max((len(by.get(("stepwork", w), [])) for w in workloads), default=0)
    header = ["workload", "mode", "runs", "stepwork runs/s", "us/step", "above mem", "DBOS runs/s", "us/step",
              "ratio", "target", "measured", "met"]
    rows: list[list[str]] = []
    notes: list[str] = []

    def met_of(ok: bool | None, bad: int) -> str:
        met = "-" if ok is None else ("yes" if ok else "NO")
        return met + (f" ({bad} NOT OK)" if bad else "")

    for w in workloads:
        # a -retained workload is judged on its twin's targets, against the twin's DBOS lines
        sw, db, base_w = by.get(("stepwork", w), []), by.get(("dbos", twin(w)), []), twin(w)
        mode = "durable-postgres" if is_postgres(w) else "durable-sqlite"
        if not sw:
            why = skipped.get(w, "no result")
            rows.append([w, mode, "-", "-", "-", "-", "-", "-", "-", "-", "-", f"skipped: {why}"])
            continue
        sw_rps = _median([r["runs_per_s"] for r in sw])
        db_rps = _median([r["runs_per_s"] for r in db])
        ratio = sw_rps / db_rps if sw_rps and db_rps else None
        us_step = _median([r["us_per_step"] for r in sw])
        above = _median([r.get("us_per_step_above_memory") for r in sw])
        bad = len([r for r in sw + db if not r.get("ok", False)])
        runs = _median([r["runs"] for r in sw])
        base = [w, mode, _fmt(runs, 0), _fmt(sw_rps), _fmt(us_step, 2), _fmt(above, 2), _fmt(db_rps),
                _fmt(_median([r["us_per_step"] for r in db]), 2), "-" if ratio is None else f"{ratio:.1f}x"]
        blank = ["", "", "", "", "", "", "", "", ""]
        if base_w in ("W1-sqlite", "W2-sqlite"):
            rows.append([*base, f"above memory <= {SQLITE_ABOVE_MEMORY_TARGET_US:.0f} us/step", f"{_fmt(above, 2)} us",
                         met_of(None if above is None else above <= SQLITE_ABOVE_MEMORY_TARGET_US, bad)])
        elif base_w in ("W1-postgres", "W2-postgres"):
            rows.append([*base, f"<= {PG_STEP_TARGET_US:.0f} us/step", f"{_fmt(us_step, 2)} us",
                         met_of(None if us_step is None else us_step <= PG_STEP_TARGET_US, bad)])
            rows.append([*blank, f">= {DBOS_RATIO_TARGET:.0f}x DBOS runs/s",
                         "-" if ratio is None else f"{ratio:.1f}x",
                         "- (DBOS not run)" if ratio is None else met_of(ratio >= DBOS_RATIO_TARGET, 0)])
        elif base_w == "W4-postgres":
            rows.append([*base, f">= {W4_DBOS_RATIO_TARGET:.0f}x DBOS runs/s",
                         "-" if ratio is None else f"{ratio:.1f}x",
                         "- (DBOS not run)" if ratio is None else met_of(ratio >= W4_DBOS_RATIO_TARGET, bad)])
        elif base_w in ("W6", "W6-postgres"):
            n = int(_median([r["steps_per_run"] for r in sw]) or W6_LONG)
            r10 = _median([r.get("us_per_step_at_10") for r in sw])
            rn = _median([r.get(f"us_per_step_at_{n}") for r in sw])
            q = _median([r.get(f"ratio_{n}_to_10") for r in sw])
            if n == W6_LONG:
                rows.append([*base, f"us/step 1,000 <= {W6_RATIO_TARGET}x 10", "-" if q is None else f"{q:.2f}x",
                             met_of(None if q is None else q <= W6_RATIO_TARGET, bad)])
            else:
                rows.append([*base, f"us/step 1,000 <= {W6_RATIO_TARGET}x 10", "cannot run",
                             met_of(False, bad)])
            notes.append(f"{w}: us/step at 10 steps {_fmt(r10, 2)}, at {n:,} steps {_fmt(rn, 2)} "
                         f"(ratio {_fmt(q, 2)}x)" + ("" if n == W6_LONG else
                                                     f"; the {W6_LONG:,}-step workflow cannot run, see below"))
            for field in ("engine_error", "engine_error_at_raised_limit"):
                notes += [f"{w}: ENGINE ERROR: {e}" for e in sorted({r[field] for r in sw if r.get(field)})]
        elif w == "W7":
            peak = _median([r.get("peak_rss_mb") for r in sw])
            rows.append([*base, f"peak RSS <= {W7_PEAK_RSS_TARGET_MB:.0f} MB", f"{_fmt(peak)} MB",
                         met_of(None if peak is None else peak <= W7_PEAK_RSS_TARGET_MB, bad)])
            notes.append(f"W7: {_fmt(runs, 0)} waiting executions: {_fmt(_median([r.get('starts_per_s') for r in sw]))}"
                         f" starts/s, {_fmt(_median([r.get('completions_per_s') for r in sw]))} completions/s, "
                         f"peak RSS {_fmt(peak)} MB (RSS {_fmt(_median([r.get('rss_before_starts_mb') for r in sw]))}"
                         f" MB before the starts, {_fmt(_median([r.get('rss_after_starts_mb') for r in sw]))} MB "
                         "after)")
    for w in workloads:
        sw = by.get(("stepwork", w), [])
        if twin(w) in DBOS_WORKLOADS and sw and w != "W4-postgres":
            notes.append(f"{w}: in memory {_fmt(_median([r.get('memory_us_per_step') for r in sw]), 2)} us/step "
                         f"(same process, right before), stored {_fmt(_median([r['us_per_step'] for r in sw]), 2)}"
                         + (f"; {_fmt(_median([r.get('rows_left') for r in sw]), 0)} executions kept"
                            if w.endswith(RETAINED) else ""))
    title = f"median of {reps} repetitions" if reps > 1 else "one repetition"
    out = [f"stepwork stored (durable) workloads, {title}" + (f"; {dbos_note}" if dbos_note else "")]
    out += _table(header, rows, {0, 1, 9, 11})
    out += notes
    counts = counts_table(by, workloads)
    if counts:
        out += ["", "What the store sent per step (an untimed counting pass after the timed runs; medians)"]
        out += counts
    floors = floors_table(by, workloads)
    if floors:
        out += ["", "What the database alone costs (benchmarks/floors.py: same process and database, after the "
                    "counting pass; medians, us per step)"]
        out += floors
    return "\n".join(out)


def floors_table(by: dict[tuple[str, str], list[dict[str, Any]]], workloads: list[str]) -> list[str]:
    """Per stored W1/W2: the measured us/step beside the store's statements replayed alone, the rest
    (the engine), one commit times the commits per step, and (SQLite) a schema of bare primary keys."""
    header = ["workload", "stored", "its SQL alone", "same, 1 transaction", "engine (rest)", "commits alone",
              "bare-key schema", "round trip", "goal"]
    rows: list[list[str]] = []
    notes: list[str] = []
    for w in workloads:
        sw = [r for r in by.get(("stepwork", w), []) if "sql_replay_us_per_step" in r]
        if not sw:
            continue
        m = {k: _median([r.get(k) for r in sw]) for k in (
            "us_per_step", "memory_us_per_step", "sql_replay_us_per_step", "sql_replay_one_transaction_us_per_step",
            "engine_us_per_step",
            "commit_floor_us_per_step", "minimal_schema_us_per_step", "round_trip_us", "commit_us")}
        if is_postgres(w):
            goal = PG_STEP_TARGET_US
            goal_text = f"<= {goal:.0f}"
        else:
            goal = (m["memory_us_per_step"] or 0.0) + SQLITE_ABOVE_MEMORY_TARGET_US
            goal_text = f"<= {goal:.1f} (memory + {SQLITE_ABOVE_MEMORY_TARGET_US:.0f})"
        rows.append([w, *(_fmt(m[k], 2) for k in ("us_per_step", "sql_replay_us_per_step",
                                                  "sql_replay_one_transaction_us_per_step", "engine_us_per_step",
                                                  "commit_floor_us_per_step", "minimal_schema_us_per_step")),
                     _fmt(m["round_trip_us"], 1), goal_text])
        sql = m["sql_replay_us_per_step"]
        if sql is not None and sql > goal:
            notes.append(f"{w}: the store's statements alone cost {sql:.1f} us/step, above the goal of {goal:.1f}"
                         f" (one commit {_fmt(m['commit_us'], 1)} us)")
    if not rows:
        return []
    return [*_table(header, rows, {0, 8}), *notes]


def counts_table(by: dict[tuple[str, str], list[dict[str, Any]]], workloads: list[str]) -> list[str]:
    """Statements, commits and round trips per step (and per run) of each stored workload, then the
    statements by kind (of the last repetition)."""
    header = ["workload", "statements/step", "commits/step", "round trips/step", "statements/run", "commits/run"]
    rows: list[list[str]] = []
    kinds_lines: list[str] = []
    for w in workloads:
        sw = [r for r in by.get(("stepwork", w), []) if "statements_per_step" in r]
        if not sw:
            continue
        parts = [("", "")] + ([("_at_10", " (10 steps)")] if twin(w) in ("W6", "W6-postgres") else [])
        for suffix, label in parts:
            rows.append([w + label, *(_fmt(_median([r.get(f"{key}{suffix}") for r in sw]), nd) for key, nd in (
                ("statements_per_step", 2), ("commits_per_step", 2), ("round_trips_per_step", 2),
                ("statements_per_run", 1), ("commits_per_run", 1)))])
            if w == "W7":  # a run is a start and a completion
                for unit in ("start", "completion"):
                    kinds = sw[-1].get(f"statements_by_kind_per_{unit}") or {}
                    kinds_lines.append(f"  {w} per {unit}: " + ", ".join(f"{k} {v:g}" for k, v in kinds.items()))
            else:
                kinds = sw[-1].get(f"statements_by_kind_per_run{suffix}") or {}
                kinds_lines.append(f"  {w + label} per run: " + ", ".join(f"{k} {v:g}" for k, v in kinds.items()))
    if not rows:
        return []
    return [*_table(header, rows, {0}), "Statements by kind:", *kinds_lines]


def http_summary(records: list[dict[str, Any]], workloads: list[str], skipped: dict[str, str] | None = None) -> str:
    """W9: per backend and request shape, the medians over repetitions of median and p99 latency."""
    from benchmarks.w9 import DETAIL_TARGET_MS, LIST_TARGETS_MS

    by = _group(records)
    header = ["workload", "shape", "rows", "count", "median ms", "p99 ms", "target", "met"]
    rows: list[list[str]] = []
    for w in [w for w in HTTP if w in workloads]:
        sw = by.get(("stepwork", w), [])
        if not sw:
            rows.append([w, "-", "-", "-", "-", "-", "-", f"skipped: {(skipped or {}).get(w, 'no result')}"])
            continue
        for shape in sw[-1]["shapes"]:
            got = [r["shapes"][shape] for r in sw if shape in r.get("shapes", {})]
            med, p99 = _median([g["median_ms"] for g in got]), _median([g["p99_ms"] for g in got])
            detail = shape.startswith("detail")
            ok = all(g["ok"] for g in got)
            if detail:
                target, met = f"median <= {DETAIL_TARGET_MS:.0f}", med is not None and med <= DETAIL_TARGET_MS
            else:
                target = f"median <= {LIST_TARGETS_MS[0]:.0f}, p99 <= {LIST_TARGETS_MS[1]:.0f}"
                met = med is not None and p99 is not None and med <= LIST_TARGETS_MS[0] and p99 <= LIST_TARGETS_MS[1]
            rows.append([w, shape, str(got[-1].get("rows", "-")), str(got[-1].get("count", "-")), _fmt(med, 2),
                         _fmt(p99, 2), target, ("yes" if met else "NO") + ("" if ok else " (NOT OK)")])
    return "\n".join(["W9: the HTTP admin API through uvicorn (ms per request; medians over repetitions)",
                      *_table(header, rows, {0, 1, 6, 7})])


# ------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workloads", nargs="*", metavar="W",
                    help=f"workloads to run ({' '.join(ALL)}, or the groups memory, stored, all; default all)")
    ap.add_argument("--runs-scale", type=float, default=1.0, metavar="X",
                    help="multiply stepwork's timed and warm-up run counts by X (default 1; the peers' are fixed)")
    ap.add_argument("--out", metavar="FILE", help="append every JSON line (with a 'rep' field) to FILE")
    ap.add_argument("--with-medusa", action="store_true",
                    help="also run Medusa's bench.mjs for each in-memory workload (MEDUSA_PREFIX, default "
                         f"{DEFAULT_MEDUSA_PREFIX})")
    ap.add_argument("--with-dbos", action="store_true",
                    help="also run DBOS's bench.py beside the stored W1/W2 (DBOS_PYTHON, default "
                         f"{DEFAULT_DBOS_PYTHON}; DBOS_BENCH_PG_URL, default {DEFAULT_DBOS_PG_URL})")
    ap.add_argument("--reps", type=int, default=1, metavar="N",
                    help="repeat the whole set N times; the summary shows medians (default 1)")
    ap.add_argument("--in-process", action="store_true",
                    help="run the given workloads one after another in this process instead of one process each")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="(in this process) print the top N functions by tottime of a cProfile of each workload: "
                         "the timed runs of a stored workload, the whole of an in-memory one")
    ap.add_argument("--timeout", type=float, default=590.0, metavar="S", help="seconds per bench process")
    args = ap.parse_args(argv)
    canonical = {w.lower(): w for w in ALL + HTTP + SCALE + SCALE_IO}
    chosen: list[str] = []
    unknown: list[str] = []
    for w in args.workloads:
        names = GROUPS.get(w.lower()) or ([canonical[w.lower()]] if w.lower() in canonical else None)
        if names is None:
            unknown.append(w)
        else:
            chosen += [n for n in names if n not in chosen]
    if unknown:
        ap.error(f"unknown workload(s) {', '.join(unknown)}; choose from {' '.join(ALL + HTTP)} "
                 "(or memory, stored, http, all)")
    args.single = len(args.workloads) == 1 and len(chosen) == 1
    args.workloads = chosen
    if args.runs_scale <= 0:
        ap.error("--runs-scale must be > 0")
    if args.reps < 1:
        ap.error("--reps must be >= 1")
    if args.profile < 0:
        ap.error("--profile must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads = args.workloads or ALL
    out_file: TextIO | None = open(args.out, "a") if args.out else None  # noqa: SIM115
    try:
        single = args.single and not args.with_medusa and not args.with_dbos and args.reps == 1
        if args.in_process or single or args.profile:
            records, skipped = run_in_process(workloads, args.runs_scale, args.profile)
            if out_file:
                for rec in records:
                    out_file.write(json.dumps({**rec, "rep": 1}) + "\n")
            if not single:
                if any(w in MEMORY for w in workloads):
                    log(summary(records, workloads, "Medusa not run (in-process)"))
                if any(w in STORED for w in workloads):
                    log(stored_summary(records, workloads, "DBOS not run (in-process)",
                                       dict.fromkeys(skipped, "database unreachable")))
            if any(w in HTTP for w in workloads):
                log(http_summary(records, workloads))
            if any(w in SCALE + SCALE_IO for w in workloads) and not single:
                from benchmarks.w8 import w8_summary

                log(w8_summary(records, workloads))
            if not all(r["ok"] for r in records):
                return 1
            return SKIPPED if skipped and not records else 0
        return orchestrate(args, workloads, out_file)
    finally:
        if out_file:
            out_file.close()


def orchestrate(args: argparse.Namespace, workloads: list[str], out_file: TextIO | None) -> int:
    """One process per (peer, workload), repeated ``--reps`` times; print lines, then the summaries."""
    medusa: Medusa | None = None
    medusa_note = "Medusa not run (add --with-medusa)"
    if args.with_medusa and any(w in MEMORY for w in workloads):
        medusa = Medusa()
        problem = medusa.problem()
        if problem:
            log(f"Skipping Medusa: {problem}")
            medusa = None
            medusa_note = "Medusa skipped (not installed, see the message above)"
        else:
            medusa_note = ""
    skipped: dict[str, str] = {}
    pg_note = ""
    if any(is_postgres(w) for w in workloads):
        from benchmarks.databases import PG_ADMIN_URL  # (no psycopg import: see pg_in_child)

        problem = pg_in_child("check", PG_ADMIN_URL)
        if problem:
            log(f"Skipping the PostgreSQL workloads: {problem}")
            pg_note = problem
            skipped.update({w: "PostgreSQL unreachable" for w in workloads if is_postgres(w)})
            workloads = [w for w in workloads if not is_postgres(w)]
    dbos: Dbos | None = None
    dbos_note = "DBOS not run (add --with-dbos)"
    if args.with_dbos and any(twin(w) in DBOS_WORKLOADS or w in SCALE + SCALE_IO for w in workloads):
        dbos = Dbos()
        problem = dbos.problem()
        if problem is None and any(is_postgres(w) or w in SCALE + SCALE_IO for w in workloads):
            problem = dbos.ensure_pg_database()
        if problem:
            log(f"Skipping DBOS: {problem}")
            dbos = None
            dbos_note = "DBOS skipped (see the message above)"
        else:
            dbos_note = ""
    peers = [name for name, on in (("Medusa at " + str(medusa.prefix) if medusa else "", medusa),
                                   ("DBOS with " + str(dbos.python) if dbos else "", dbos)) if on]
    log(f"stepwork benchmarks: {' '.join(workloads)}, {args.reps} repetition(s), runs x {args.runs_scale:g}, "
        f"{os.cpu_count()} CPU(s){', with ' + ' and '.join(peers) if peers else ''}")
    records: list[dict[str, Any]] = []
    failed = False
    for rep in range(1, args.reps + 1):
        for w in workloads:
            jobs: list[tuple[str, list[str], dict[str, str] | None]] = [
                (f"stepwork {w}", stepwork_cmd(w, args.runs_scale), None)]
            if medusa and w in MEMORY:
                jobs.append((f"medusa {w}", medusa.cmd(w), medusa.env()))
            if dbos and dbos_beside(w, workloads):
                jobs.append((f"dbos {twin(w)}", dbos.cmd(w), dbos.env()))
            if dbos and w in SCALE + SCALE_IO:
                from benchmarks.w8 import dbos_command

                jobs.append((f"dbos {w}", dbos_command(str(dbos.python), w, args.runs_scale), dbos.env()))
            for label, cmd, env in jobs:
                lines, clean = run_process(cmd, f"{label} (rep {rep})", args.timeout, env)
                failed |= not clean
                for rec in lines:
                    print(json.dumps(rec), flush=True)
                    if out_file:
                        out_file.write(json.dumps({**rec, "rep": rep}) + "\n")
                        out_file.flush()
                    records.append(rec)
                    failed |= not rec.get("ok", False)
    every = list(args.workloads or ALL)
    log("")
    if any(w in MEMORY for w in every):
        log(summary(records, every, medusa_note))
    if any(w in STORED for w in every):
        if any(w in MEMORY for w in every):
            log("")
        log(stored_summary(records, every, dbos_note, skipped))
        if pg_note:
            log(f"PostgreSQL rows skipped: {pg_note}")
    if any(w in HTTP for w in every):
        log("\n" + http_summary(records, every, skipped))
    if any(w in SCALE + SCALE_IO for w in every):
        from benchmarks.w8 import w8_summary

        log("\n" + w8_summary(records, every))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
