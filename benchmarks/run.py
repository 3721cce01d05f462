"""Run the peer workloads (W1..W5) on stepwork, optionally beside Medusa, and print JSON lines.

    python -m benchmarks.run                      # W1..W5, each in its own process
    python -m benchmarks.run W1 W3                # only these (each in its own process)
    python -m benchmarks.run W1                   # one workload, in this process
    python -m benchmarks.run --with-medusa        # Medusa's bench.mjs too, workload by workload
    python -m benchmarks.run --with-medusa --reps 3 --out results.jsonl

Every workload prints one JSON line on stdout, in the shape of the peer benches
(``shared/peers/README.md``); a summary table (medians over ``--reps``) goes to stderr, with the
ratios to Medusa and the targets. ``--out FILE`` appends every line, tagged with ``rep``, to FILE.
Exit status 1 if a workload reports ``ok: false`` or a bench process fails.
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

ALL = ["W1", "W2", "W3", "W4", "W5"]
DEFAULT_MEDUSA_PREFIX = "/work/peers-scratch/medusa"
DEFAULT_MEDUSA_BENCH = ROOT.parent / "shared" / "peers" / "medusa" / "bench.mjs"
MEDUSA_PEER = "medusa-workflows-sdk"

# The targets of the issue: stepwork runs/s at least this many times Medusa's, and W3's overhead.
RATIO_TARGETS = {"W1": 25.0, "W2": 15.0, "W4": 15.0, "W5": 12.0}
W3_OVERHEAD_TARGET_US = 50.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------- in this process
def run_in_process(workloads: list[str], scale: float) -> list[dict[str, Any]]:
    """Run the workloads here, one event loop each, printing each JSON line as it is ready."""
    from benchmarks.workloads import WORKLOADS, record

    out = []
    for w in workloads:
        rec = record(asyncio.run(WORKLOADS[w](scale)))
        print(json.dumps(rec), flush=True)
        out.append(rec)
    return out


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


# --------------------------------------------------------------------------------------- summary
def _median(values: list[Any]) -> float | None:
    vals = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None


def _fmt(v: float | None, nd: int = 1) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.{nd}f}"


def summary(records: list[dict[str, Any]], workloads: list[str], medusa_note: str = "") -> str:
    """A readable table: per workload, stepwork vs Medusa (medians over repetitions) and the targets."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by[("stepwork" if r.get("peer") == "stepwork" else "medusa", r["workload"])].append(r)
    reps = max((len(v) for v in by.values()), default=0)
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
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=False)]

    def fmt_row(cells: list[str]) -> str:
        # numbers right-aligned, the workload and the target columns left-aligned
        return "  ".join(c.rjust(n) if 0 < i < 6 else c.ljust(n)
                         for i, (c, n) in enumerate(zip(cells, widths, strict=True))).rstrip()

    title = f"median of {reps} repetitions" if reps > 1 else "one repetition"
    out = [f"stepwork vs Medusa (in memory), {title}" + (f"; {medusa_note}" if medusa_note else ""),
           fmt_row(header), "  ".join("-" * n for n in widths)]
    out += [fmt_row(r) for r in rows]
    out += notes
    return "\n".join(out)


# ------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workloads", nargs="*", metavar="W", help="workloads to run (W1..W5; default all)")
    ap.add_argument("--runs-scale", type=float, default=1.0, metavar="X",
                    help="multiply stepwork's timed and warm-up run counts by X (default 1; Medusa's are fixed)")
    ap.add_argument("--out", metavar="FILE", help="append every JSON line (with a 'rep' field) to FILE")
    ap.add_argument("--with-medusa", action="store_true",
                    help="also run Medusa's bench.mjs for each workload (MEDUSA_PREFIX, default "
                         f"{DEFAULT_MEDUSA_PREFIX})")
    ap.add_argument("--reps", type=int, default=1, metavar="N",
                    help="repeat the whole set N times; the summary shows medians (default 1)")
    ap.add_argument("--in-process", action="store_true",
                    help="run the given workloads one after another in this process instead of one process each")
    ap.add_argument("--timeout", type=float, default=590.0, metavar="S", help="seconds per bench process")
    args = ap.parse_args(argv)
    unknown = [w for w in args.workloads if w.upper() not in ALL]
    if unknown:
        ap.error(f"unknown workload(s) {', '.join(unknown)}; choose from {' '.join(ALL)}")
    args.workloads = [w.upper() for w in args.workloads]
    if args.runs_scale <= 0:
        ap.error("--runs-scale must be > 0")
    if args.reps < 1:
        ap.error("--reps must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads = args.workloads or ALL
    out_file: TextIO | None = open(args.out, "a") if args.out else None  # noqa: SIM115
    try:
        single = len(args.workloads) == 1 and not args.with_medusa and args.reps == 1
        if args.in_process or single:
            records = run_in_process(workloads, args.runs_scale)
            if out_file:
                for rec in records:
                    out_file.write(json.dumps({**rec, "rep": 1}) + "\n")
            if not single:
                log(summary(records, workloads, "Medusa not run (add --with-medusa)"))
            return 0 if all(r["ok"] for r in records) else 1
        return orchestrate(args, workloads, out_file)
    finally:
        if out_file:
            out_file.close()


def orchestrate(args: argparse.Namespace, workloads: list[str], out_file: TextIO | None) -> int:
    """One process per (peer, workload), repeated ``--reps`` times; print lines, then the summary."""
    medusa: Medusa | None = None
    medusa_note = "Medusa not run (add --with-medusa)"
    if args.with_medusa:
        medusa = Medusa()
        problem = medusa.problem()
        if problem:
            log(f"Skipping Medusa: {problem}")
            medusa = None
            medusa_note = "Medusa skipped (not installed, see the message above)"
        else:
            medusa_note = ""
    log(f"stepwork benchmarks: {' '.join(workloads)}, {args.reps} repetition(s), runs x {args.runs_scale:g}, "
        f"{os.cpu_count()} CPU(s){', with Medusa at ' + str(medusa.prefix) if medusa else ''}")
    records: list[dict[str, Any]] = []
    failed = False
    for rep in range(1, args.reps + 1):
        for w in workloads:
            jobs: list[tuple[str, list[str], dict[str, str] | None]] = [
                (f"stepwork {w}", stepwork_cmd(w, args.runs_scale), None)]
            if medusa:
                jobs.append((f"medusa {w}", medusa.cmd(w), medusa.env()))
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
    log("")
    log(summary(records, workloads, medusa_note))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
