"""The multi-process fault harness (issue 12): worker processes on one PostgreSQL, faults, invariants.

- :class:`PrivatePostgres`: a PostgreSQL server of the harness's own (``initdb`` + ``pg_ctl`` from
  ``/usr/lib/postgresql/*/bin``, a temporary data directory, a free port on 127.0.0.1), which a test
  may restart at will without touching the machine's shared server (other tests and sessions use it).
  As root it runs the server as ``postgres`` through ``runuser`` (PostgreSQL refuses to run as root).
- :class:`Fleet`: worker processes (``python -m tests.workers.worker_app``), started, signalled
  (SIGKILL, SIGSTOP, SIGCONT: each recorded as a :class:`Disruption`), stopped.
- :func:`observe` and :func:`check`: the state of the database and the journals after a scenario,
  and the invariants that must hold (:class:`Report`).

The invariants (checked after every scenario):

1. every run a worker started, and every schedule tick, has exactly one execution, in its expected
   terminal state (nothing lost, nothing run twice, nothing stuck);
2. no execution's ``on_finish`` was seen twice (a terminal write accepted twice);
3. per execution, the steps were invoked in order: once a later step (or the compensation) started,
   no earlier step started again; the stored output of each step comes from its *last* invocation
   (a zombie's late result is not the one kept); ``ctx.attempt`` grows with each invocation of a
   step; and an invocation is followed by another of the same step only if it raised (its retry
   policy) or a disruption hit it: its process was killed or stopped after it began, or PostgreSQL
   went down while it ran (the step in flight at a crash, run again under its idempotency key);
4. an async step is completed (``set_step_success``) successfully at most once;
5. no tick ran twice (one execution per tick's transaction id, and no more ticks than
   ``number_of_executions``);
6. nothing is left unfinished (if anything is, the report says who holds its lease and whether that
   process is alive, and which timers it has).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.engine.faults.harness import free_port
from tests.workers.journal import EXPECTED_STATE, STEPS, TICK_WORKFLOW, parse_runs, read_journals, transaction_ids

ROOT = Path(__file__).resolve().parents[2]
FINISHED = ("done", "reverted", "failed")
ASYNC_STEPS = {("harness-async", "async-2")}
PG_SLACK = 1.0  # seconds around a PostgreSQL outage in which an invocation counts as hit by it


# -- a PostgreSQL server of our own -------------------------------------------------------------------

def _pg_bin() -> Path | None:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name)
                  if Path(d).parent.name.isdigit() else 0)
    for d in reversed(dirs):
        if (Path(d) / "pg_ctl").exists() and (Path(d) / "initdb").exists():
            return Path(d)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


def private_postgres_unavailable() -> str | None:
    """Why :class:`PrivatePostgres` cannot run here (``None`` if it can)."""
    if _pg_bin() is None:
        return "no initdb/pg_ctl (PostgreSQL server binaries) on this machine"
    if os.geteuid() == 0 and (shutil.which("runuser") is None or _uid("postgres") is None):
        return "running as root, and there is no postgres user (or runuser) to run the server as"
    return None


def _uid(user: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


class PrivatePostgres:
    """A throwaway PostgreSQL server: ``start()``, ``url(db)``, ``restart()``, ``close()``."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="stepwork-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.restarts = 0

    def _cmd(self, *args: str) -> list[str]:
        assert self.bin is not None
        cmd = [str(self.bin / args[0]), *args[1:]]
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def _run(self, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()} "
                               f"{done.stdout.strip()}\n{self.server_log(20)}")

    def server_log(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def start(self) -> PrivatePostgres:
        os.chmod(self.base, 0o755)
        if os.geteuid() == 0:
            uid = _uid("postgres")
            assert uid is not None
            os.chown(self.base, uid, -1)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self.begin()
        return self

    def begin(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        self.wait_ready()

    def end(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (connections are closed) or ``immediate`` (a crash: no checkpoint)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists() and self._accepts()

    def _accepts(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self._accepts():
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on port {self.port} did not come back in {timeout}s\n"
                                   f"{self.server_log()}")
            time.sleep(0.05)

    def restart(self, mode: str = "immediate", down_for: float = 1.0) -> Disruption:
        """Stop the server, keep it down ``down_for`` seconds, start it; the outage as a disruption."""
        t0 = time.time()
        try:
            self.end(mode)
            time.sleep(down_for)
        finally:
            self.begin()  # back up even if stopping failed half-way
        self.restarts += 1
        return Disruption("pg-restart", None, t0, time.time())

    def ensure_running(self) -> None:
        if not self._accepts():
            with contextlib.suppress(RuntimeError):
                self.end("immediate")
            self.begin()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.end("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


# -- worker processes ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Disruption:
    """A fault the harness caused: ``kind`` (kill, stop, pg-restart, term), the process hit (``None``: all of
    them, the database went away), and when (``t0``..``t1``, wall clock; a stop lasts until its SIGCONT)."""

    kind: str
    pid: int | None
    t0: float
    t1: float


class Fleet:
    """The worker processes of one scenario, on ``database_url``, journaling into ``directory``."""

    def __init__(self, database_url: str, directory: Path, *, lease_ttl: float = 2.0, poll_interval: float = 0.2,
                 tick_interval: float = 0.0, tick_count: int = 0, scale: float = 1.0) -> None:
        self.url = database_url
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.tick_interval = tick_interval
        self.tick_count = tick_count
        self.scale = scale
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.expected: list[tuple[str, str]] = []  # (workflow, transaction id) of every run started
        self.owner_of: dict[str, int] = {}  # transaction id -> index of the worker that starts it
        self.disruptions: list[Disruption] = []
        self.ticks_done_at: float | None = None  # when the schedule's timer was first seen gone

    def start(self, index: int, runs: str = "", *, concurrency: int = 0, extra: tuple[str, ...] = (),
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        args = ["--database-url", self.url, "--dir", str(self.dir), "--index", str(index), "--runs", runs,
                "--lease-ttl", str(self.lease_ttl), "--poll-interval", str(self.poll_interval),
                "--scale", str(self.scale), "--concurrency", str(concurrency)]
        if self.tick_interval > 0:
            args += ["--tick-interval", str(self.tick_interval), "--tick-count", str(self.tick_count)]
        for wf_tid in transaction_ids(f"w{index}", parse_runs(runs)):
            self.expected.append(wf_tid)
            self.owner_of[wf_tid[1]] = index
        out = open(self.dir / f"worker-{index}.out", "ab")  # noqa: SIM115 (the child keeps it)
        proc = subprocess.Popen([sys.executable, "-m", "tests.workers.worker_app", *args, *extra], cwd=ROOT,
                                env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.procs[index] = proc
        return proc

    def pid(self, index: int) -> int:
        return self.procs[index].pid

    def journal(self) -> list[dict[str, Any]]:
        return read_journals(self.dir)

    async def wait_ready(self, timeout: float = 60) -> None:
        """Wait until every worker's engine has started (its ``ready`` line)."""
        deadline = time.monotonic() + timeout
        while True:
            ready = {line["pid"] for line in self.journal() if line["event"] == "ready"}
            if all(p.pid in ready for p in self.procs.values()):
                return
            for index, p in self.procs.items():
                if p.pid not in ready and p.poll() is not None:
                    raise AssertionError(f"worker {index} exited ({p.returncode}) before it was ready:\n"
                                         f"{self.output(index)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"workers not ready after {timeout}s:\n{self.outputs()}")
            await asyncio.sleep(0.05)

    def go(self) -> None:
        (self.dir / "go").write_text("1")

    def kill(self, index: int) -> None:
        proc = self.procs[index]
        t = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.disruptions.append(Disruption("kill", proc.pid, t, t))

    def terminate(self, index: int) -> Disruption:
        """SIGTERM worker ``index`` (its engine's graceful stop, ``--grace``); the disruption lasts until it
        exits (``t1`` is set by :meth:`wait_exit`): steps it cut short may run again elsewhere."""
        return self._signal(index, signal.SIGTERM, "term")

    async def wait_exit(self, index: int, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for worker ``index`` to exit; its exit code."""
        proc = self.procs[index]
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {index} still running {timeout}s later\n{self.output(index)}")
            await asyncio.sleep(0.05)
        for d in self.disruptions:
            if d.kind == "term" and d.pid == proc.pid and d.t1 == float("inf"):
                d.t1 = time.time()
        return proc.returncode

    def freeze(self, index: int) -> Disruption:
        return self._signal(index, signal.SIGSTOP, "stop")

    def _signal(self, index: int, sig: signal.Signals, kind: str) -> Disruption:
        """Send ``sig`` to worker ``index``; the disruption it starts, open until it is ended."""
        proc = self.procs[index]
        d = Disruption(kind, proc.pid, time.time(), float("inf"))
        proc.send_signal(sig)
        if sig == signal.SIGSTOP:
            # The process runs on until the signal is delivered (milliseconds, on a busy machine): what
            # it started meanwhile was started before the stop. The stop begins once /proc says so.
            deadline = time.monotonic() + 2
            while not self.is_stopped(index) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            d.t0 = time.time()
        self.disruptions.append(d)
        return d

    def thaw(self, index: int) -> None:
        proc = self.procs[index]
        proc.send_signal(signal.SIGCONT)
        for d in self.disruptions:
            if d.kind == "stop" and d.pid == proc.pid and d.t1 == float("inf"):
                d.t1 = time.time()

    def is_stopped(self, index: int) -> bool:
        try:
            stat = Path(f"/proc/{self.procs[index].pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(") ", 1)[1].startswith("T")

    def alive_pids(self) -> set[int]:
        return {p.pid for p in self.procs.values() if p.poll() is None}

    async def stop_all(self, timeout: float = 20) -> None:
        """SIGTERM every worker (after SIGCONT) and wait for it to stop its engine; SIGKILL stragglers."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in self.procs.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.close()

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)
                    proc.send_signal(signal.SIGKILL)
            proc.wait()

    def output(self, index: int, lines: int = 30) -> str:
        texts = []
        for path in sorted(self.dir.glob(f"worker-{index}*")):
            with contextlib.suppress(OSError):
                body = path.read_text(errors="replace").splitlines()
                if body:
                    texts.append(f"--- {path.name} (last {lines} lines)\n" + "\n".join(body[-lines:]))
        return "\n".join(texts)

    def outputs(self, lines: int = 30) -> str:
        return "\n".join(self.output(i, lines) for i in self.procs)


# -- the state after a scenario -------------------------------------------------------------------------

@dataclasses.dataclass
class Observed:
    """What the database holds: the executions (through ``list_workflow_executions``), their lease
    columns, and the timers."""

    executions: list[Any]
    leases: dict[tuple[str, str, str], dict[str, Any]]
    timers: list[dict[str, Any]]

    def by_transaction(self) -> dict[tuple[str, str], list[Any]]:
        out: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for e in self.executions:
            out[(e.workflow_id, e.transaction_id)].append(e)
        return out


async def observe(database_url: str) -> Observed:
    """Read the harness workflows' executions and the timers. The engine used here defines none of the
    harness workflows, so it never recovers or fires anything of theirs."""
    import psycopg

    from stepwork import WorkflowEngine

    async with WorkflowEngine(database_url, poll_interval=3600, lease_ttl=3600, cleanup_interval=3600) as engine:
        executions = await engine.list_workflow_executions({"workflow_id": [*STEPS]})
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT workflow_id, transaction_id, run_id, state, lease_owner, "
            "extract(epoch FROM lease_expires_at)::float8, version FROM workflow_execution")
        leases = {(r[0], r[1], r[2]): {"state": r[3], "lease_owner": r[4], "lease_expires_at": r[5], "version": r[6]}
                  for r in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT id, workflow_id, transaction_id, kind, extract(epoch FROM due_at)::float8, claimed_by, data "
            "FROM workflow_timer ORDER BY due_at")
        timers = [{"id": r[0], "workflow_id": r[1], "transaction_id": r[2], "kind": r[3], "due_at": r[4],
                   "claimed_by": r[5], "data": r[6]} for r in await cur.fetchall()]
    return Observed(executions, leases, timers)


async def settled(fleet: Fleet) -> tuple[bool, Observed]:
    """Whether every run started is finished and the schedule has fired all its ticks (its timer is
    gone and every tick's execution is finished)."""
    seen = await observe(fleet.url)
    by_tid = seen.by_transaction()
    for key in fleet.expected:
        runs = by_tid.get(key, [])
        if not runs or runs[-1].state not in FINISHED:
            return False, seen
    if fleet.tick_count:
        if any(t["kind"] == "schedule" for t in seen.timers):
            return False, seen
        ticks = [e for e in seen.executions if e.workflow_id == TICK_WORKFLOW]
        if any(e.state not in FINISHED for e in ticks):
            return False, seen
        if len({e.transaction_id for e in ticks}) < fleet.tick_count:
            # The last tick's timer is deleted before its run stores its execution: give it time to
            # appear (a tick lost for good shows as missing after that).
            if fleet.ticks_done_at is None:
                fleet.ticks_done_at = time.monotonic()
            if time.monotonic() - fleet.ticks_done_at < 2 * fleet.lease_ttl + 1:
                return False, seen
    return True, seen


async def wait_settled(fleet: Fleet, timeout: float) -> Observed:
    """Wait until :func:`settled` (or ``timeout`` seconds); return the last observation."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, seen = await settled(fleet)
        except Exception:  # the database is restarting: look again
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
            continue
        if done or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.2)


# -- the invariants -------------------------------------------------------------------------------------

@dataclasses.dataclass
class Report:
    violations: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    suspects: set[str] = dataclasses.field(default_factory=set)  # transaction ids worth showing

    @property
    def ok(self) -> bool:
        return not self.violations

    def bad(self, tid: str | None, message: str) -> None:
        self.violations.append(message)
        if tid:
            self.suspects.add(tid)

    def format(self, journal: list[dict[str, Any]] | None = None, limit: int = 60) -> str:
        parts = [f"stats: {json.dumps(self.stats, sort_keys=True)}"]
        if self.violations:
            parts.append(f"{len(self.violations)} violation(s):")
            parts += [f"  - {v}" for v in self.violations[:limit]]
        if self.notes:
            parts.append("notes:")
            parts += [f"  - {n}" for n in self.notes[:limit]]
        if journal and self.suspects:
            parts.append("journal of the transactions involved:")
            for tid in sorted(self.suspects)[:8]:
                parts += [f"  {_line(line)}" for line in journal if line.get("tid") == tid
                          or (line.get("key") or "").split(":")[1:2] == [tid]]
        return "\n".join(parts)


def _line(line: dict[str, Any]) -> str:
    fields = {k: v for k, v in line.items() if k not in ("t", "pid", "worker", "event")}
    return f"{line['t']:.3f} pid={line['pid']} w{line['worker']} {line['event']} {json.dumps(fields)}"


def _position(workflow: str, step: str, action: str) -> int:
    steps = STEPS[workflow]
    k = steps.index(step)
    return k if action == "invoke" else len(steps) + (len(steps) - 1 - k)


def _hit(inv: dict[str, Any], nxt: dict[str, Any], disruptions: list[Disruption]) -> Disruption | None:
    """The disruption that explains why invocation ``inv`` was followed by ``nxt`` of the same step."""
    for d in disruptions:
        if d.pid is None:  # the database went away while it ran
            if inv["t"] <= d.t1 + PG_SLACK and nxt["t"] >= d.t0:
                return d
        elif d.kind == "term":  # a graceful stop cuts short, at the end of its grace, what runs then
            if d.pid == inv["pid"] and inv["t"] <= d.t1 and nxt["t"] >= d.t0:
                return d
        elif d.pid == inv["pid"] and inv["t"] <= d.t0 <= nxt["t"]:
            return d
    return None


def check(observed: Observed, journal: list[dict[str, Any]], *, expected: list[tuple[str, str]],
          tick_count: int = 0, disruptions: list[Disruption] | None = None,
          alive: set[int] | None = None) -> Report:
    """Check the invariants (see the module's docstring) on what a scenario left behind."""
    disruptions = disruptions or []
    report = Report()
    by_tid = observed.by_transaction()
    expected_set = set(expected)

    # 1 and 5: one execution per run and per tick, each finished in its expected state.
    ticks = {k for k in by_tid if k[0] == TICK_WORKFLOW}
    for key in [*expected, *sorted(ticks)]:
        wf, tid = key
        runs = by_tid.get(key, [])
        if not runs:
            report.bad(tid, f"{wf}/{tid}: no execution stored (the run was lost)")
            continue
        if len(runs) > 1:
            report.bad(tid, f"{wf}/{tid}: {len(runs)} executions (runs {[r.run_id for r in runs]}, states "
                            f"{[r.state for r in runs]}): it ran more than once")
        for r in runs:
            if r.state not in FINISHED:
                lease = observed.leases.get((wf, tid, r.run_id), {})
                owner = lease.get("lease_owner")
                owner_pid = _owner_pid(owner)
                timers = [t for t in observed.timers if t["transaction_id"] == tid]
                holder = ("no owner: recovery never looks at it" if owner is None else "its process is alive"
                          if alive is not None and owner_pid in alive else "its process is gone")
                report.bad(tid, f"{wf}/{tid}: stuck in {r.state!r}; lease owner {owner!r} ({holder}), "
                                f"lease expires at {lease.get('lease_expires_at')} (now {time.time():.3f}), "
                                f"timers {[(t['kind'], t['due_at'], t['claimed_by']) for t in timers]}")
            elif r.state != EXPECTED_STATE[wf]:
                report.bad(tid, f"{wf}/{tid}: ended {r.state!r}, expected {EXPECTED_STATE[wf]!r}")
    for key in by_tid:
        if key not in expected_set and key[0] != TICK_WORKFLOW:
            report.bad(key[1], f"{key[0]}/{key[1]}: an execution nobody started")
    if tick_count:
        if len(ticks) > tick_count:
            report.bad(None, f"{len(ticks)} ticks ran, the schedule allows {tick_count}: "
                             f"{sorted(t for _, t in ticks)}")
        elif len(ticks) < tick_count:
            report.notes.append(f"{tick_count - len(ticks)} of {tick_count} ticks never ran (lost: a tick is "
                                "moved on before it runs, so a fault in between loses it)")
        if any(t["kind"] == "schedule" for t in observed.timers):
            report.notes.append("the schedule's timer is still there (not all ticks fired yet)")

    # 2: on_finish at most once per execution.
    finishes = Counter((line["wf"], line["tid"]) for line in journal if line["event"] == "finish")
    for (wf, tid), n in finishes.items():
        if n > 1:
            report.bad(tid, f"{wf}/{tid}: on_finish seen {n} times (a terminal write accepted twice)")
    missing_finish = [k for k in [*expected, *ticks]
                      if finishes[k] == 0 and by_tid.get(k) and by_tid[k][-1].state in FINISHED]
    if missing_finish:
        report.notes.append(f"{len(missing_finish)} finished execution(s) whose on_finish no live process saw "
                            f"(e.g. {missing_finish[:3]})")

    # 3: step invocations.
    starts: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    ends: dict[tuple[Any, ...], str] = {}
    for line in journal:
        if line["event"] == "start":
            starts[(line["wf"], line["tid"])].append(line)
        elif line["event"] in ("return", "raise"):
            ends[(line["pid"], line["wf"], line["tid"], line["step"], line["action"], line["attempt"])] = line["event"]
    repeats = explained = 0
    for (wf, tid), lines in starts.items():
        runs = by_tid.get((wf, tid), [])
        data = (runs[-1].context or {}).get("data", {}) if runs else {}
        last_pos = -1
        for line in lines:
            pos = _position(wf, line["step"], line["action"])
            if pos < last_pos:
                report.bad(tid, f"{wf}/{tid}: {line['step']} ({line['action']}) started again at {line['t']:.3f} "
                                f"in pid {line['pid']} after the run had moved past it: a completed step ran twice")
            last_pos = max(last_pos, pos)
        per_step: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for line in lines:
            per_step[(line["step"], line["action"])].append(line)
        for (step, action), invs in per_step.items():
            attempts = [i["attempt"] for i in invs]
            if any(b <= a for a, b in zip(attempts, attempts[1:], strict=False)):
                report.bad(tid, f"{wf}/{tid}: {step} ({action}) attempts {attempts} (pids "
                                f"{[i['pid'] for i in invs]}): an attempt number ran twice")
            for inv, nxt in zip(invs, invs[1:], strict=False):
                repeats += 1
                end = ends.get((inv["pid"], wf, tid, step, action, inv["attempt"]))
                if end == "raise":
                    continue
                d = _hit(inv, nxt, disruptions)
                if d is None:
                    report.bad(tid, f"{wf}/{tid}: {step} ({action}) attempt {inv['attempt']} in pid {inv['pid']} "
                                    f"{'returned' if end else 'did not end'}, yet attempt {nxt['attempt']} ran in pid "
                                    f"{nxt['pid']} at {nxt['t']:.3f} with no crash, stop or outage to explain it")
                else:
                    explained += 1
            stored = data.get(action, {}).get(step)
            if (wf, step) in ASYNC_STEPS and action == "invoke":
                continue
            if runs and runs[-1].state in FINISHED and isinstance(stored, dict) and "pid" in stored:
                last = invs[-1]
                if (stored["pid"], stored["attempt"]) != (last["pid"], last["attempt"]):
                    report.bad(tid, f"{wf}/{tid}: the stored output of {step} ({action}) is from pid {stored['pid']} "
                                    f"attempt {stored['attempt']}, but its last invocation was pid {last['pid']} "
                                    f"attempt {last['attempt']}: a stale (zombie) result was kept")
    report.stats.update(executions=len(observed.executions), step_invocations=sum(map(len, starts.values())),
                        repeated_invocations=repeats, repeats_explained_by_disruptions=explained,
                        disruptions=[f"{d.kind}:{d.pid}" for d in disruptions], ticks=len(ticks),
                        finish_events=sum(finishes.values()))

    # 4: async completions.
    completions = Counter(line["key"] for line in journal if line["event"] == "complete" and line["outcome"] == "ok")
    for key, n in completions.items():
        if n > 1:
            report.bad(key.split(":")[1], f"{key}: set_step_success succeeded {n} times")
    for (wf, tid), runs in by_tid.items():
        if wf != "harness-async" or not runs or runs[-1].state != "done":
            continue
        answer = (runs[-1].context or {}).get("data", {}).get("invoke", {}).get("async-2")
        key = f"{wf}:{tid}:async-2:invoke"
        # The answer comes from another process than the one whose invocation it answers: the last
        # one (a process that invoked an earlier attempt, cut short, may answer the re-invocation).
        attempts = [line for line in starts.get((wf, tid), []) if line["step"] == "async-2"]
        invoker = attempts[-1]["pid"] if attempts else None
        if not isinstance(answer, dict) or answer.get("completed_by") == invoker:
            report.bad(tid, f"{key}: answered by {answer!r}, not by another process than its last invoker {invoker}")
        elif completions[key] == 0 and not any(d.pid is None for d in disruptions):
            report.bad(tid, f"{key}: done, but no completer saw its set_step_success succeed")
    report.stats["async_completions"] = sum(completions.values())
    leftover = [t for t in observed.timers if t["kind"] != "schedule"]
    if leftover:
        report.notes.append(f"{len(leftover)} timer(s) left: {leftover[:5]}")
    return report


def _owner_pid(owner: str | None) -> int | None:
    """The pid in a lease owner ``host:pid:ulid`` (also ``abandoned:host:pid:ulid``)."""
    if not owner:
        return None
    parts = owner.split(":")
    for part in parts[1:]:
        if part.isdigit():
            return int(part)
    return None


async def verify(fleet: Fleet, *, timeout: float = 60) -> tuple[Report, Observed, list[dict[str, Any]]]:
    """Wait for the scenario to settle, then check the invariants (the workers still running)."""
    seen = await wait_settled(fleet, timeout)
    journal = fleet.journal()
    report = check(seen, journal, expected=fleet.expected, tick_count=fleet.tick_count,
                   disruptions=fleet.disruptions, alive=fleet.alive_pids())
    return report, seen, journal


def assert_report(report: Report, journal: list[dict[str, Any]], fleet: Fleet | None = None) -> None:
    if not report.ok:
        extra = f"\n{fleet.outputs(15)}" if fleet is not None else ""
        raise AssertionError("invariants violated\n" + report.format(journal) + extra)


async def until(predicate: Callable[[], bool], timeout: float, what: str, fleet: Fleet) -> None:
    """Wait until ``predicate()`` holds, polling; an ``AssertionError`` with the workers' last output
    lines after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s\n{fleet.outputs(15)}")
        await asyncio.sleep(0.02)
