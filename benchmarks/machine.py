"""What the machine spent during a measurement, read from ``/proc`` and ``getrusage``: standard
library only, so the peers' benchmark scripts (run by their own venvs) import it too."""

from __future__ import annotations

import os
import resource

__all__ = ["cpu_busy", "own_cpu", "postgres_cpu"]


def postgres_cpu(pids: set[int] | None = None) -> dict[int, float]:
    """CPU seconds (user + system) of every ``postgres`` process (of ``pids`` only, if given), by pid,
    from ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or (pids is not None and int(pid) not in pids):
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.index("(") + 1:stat.rindex(")")] == "postgres":
            fields = stat[stat.rindex(")") + 2:].split()
            out[int(pid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from ``/proc/stat``."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def own_cpu() -> float:
    """CPU seconds (user + system) this process has used."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
