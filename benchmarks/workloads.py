"""The five peer workloads (W1..W5), in memory, written with stepwork's public API.

Each mirrors ``shared/peers/medusa/bench.mjs`` step for step: same workflow shapes, same warm-up
counts, same number of timed runs, same result checks, same figures. Every workflow is defined at
import time (as the Medusa bench does at module load), so ``rss_base_mb`` is taken after loading the
library and defining the workflows.

Each ``wN(scale)`` coroutine warms up, times its runs with ``time.perf_counter`` and returns the
workload's fields (``workload`` .. ``ok`` plus any extras); :func:`record` adds the shared ones.
The stored variants and W6, W7 are in :mod:`benchmarks.stored`.
"""

from __future__ import annotations

import asyncio
import gc
import platform
import resource
import time
from collections.abc import Callable, Coroutine
from typing import Any

import stepwork
from stepwork import StepResponse, WorkflowResponse, create_step, create_workflow, parallelize

__all__ = ["WORKLOADS", "record", "rss_mb"]

STEPS = 10
PAGE = resource.getpagesize()


def rss_mb() -> float:
    """The process's current resident set size, in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def peak_rss_mb() -> float:
    """The kernel's high-water mark of this process's RSS (``ru_maxrss``, KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def vm_hwm_mb() -> float | None:
    """This process image's own RSS high-water mark (``VmHWM``), in MiB: unlike ``ru_maxrss``, it does
    not start from the high-water mark of the process that spawned this one."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def scaled(n: int, scale: float) -> int:
    """``n`` runs times the ``--runs-scale`` factor, at least 1."""
    return max(1, round(n * scale))


def settle() -> None:
    """Between warm-up and timing: collect the warm-up's garbage so it is not charged to the runs."""
    gc.collect()


# ---------------------------------------------------------------------------------------- W1 linear
def _adder(value: int) -> StepResponse[int, int]:
    return StepResponse(value + 1)


linear_steps = [create_step(f"w1-step-{i + 1}", _adder) for i in range(STEPS)]


def _linear(input: Any) -> WorkflowResponse[Any]:
    v = input
    for s in linear_steps:
        v = s(v)
    return WorkflowResponse(v)


linear_wf = create_workflow("w1-linear", _linear)


async def w1(scale: float) -> dict[str, Any]:
    for i in range(scaled(1000, scale)):  # warm-up (same count as the Medusa bench)
        await linear_wf.run(i)
    settle()
    runs = scaled(2000, scale)
    ok = True
    t0 = time.perf_counter()
    for i in range(runs):
        r = await linear_wf.run(i)
        if r.result != i + STEPS:
            ok = False
    total_s = time.perf_counter() - t0
    return {"workload": "W1", "name": "linear", "runs": runs, "steps_per_run": STEPS, "concurrency": 1,
            "total_s": total_s, "ok": ok}


# ------------------------------------------------------------------------------------ W2 compensate
# Like Medusa, stepwork also calls the compensation of the step that threw (with compensate input
# None), so a run executes 10 invokes + 10 compensations; the 9 compensations of completed steps
# (the ones that receive a compensate input) are counted separately and checked.
class _Counts:
    compensations = 0
    compensations_of_done = 0


class StepTenFailed(Exception):
    """What step 10 of W2 raises."""


def _comp_step(i: int) -> Any:
    last = i == STEPS - 1

    def invoke(n: int) -> StepResponse[int, int]:
        if last:
            raise StepTenFailed("w2: step 10 fails")
        return StepResponse(n + 1, n)  # output, compensation input

    def compensate(comp_input: int | None) -> None:
        _Counts.compensations += 1
        if comp_input is not None:
            _Counts.compensations_of_done += 1

    return create_step(f"w2-step-{i + 1}", invoke, compensate)


comp_steps = [_comp_step(i) for i in range(STEPS)]


def _compensating(input: Any) -> WorkflowResponse[Any]:
    v = input
    for s in comp_steps:
        v = s(v)
    return WorkflowResponse(v)


comp_wf = create_workflow("w2-compensate", _compensating)


async def _w2_once(i: int) -> bool:
    done_before = _Counts.compensations_of_done
    r = await comp_wf.run(i, throw_on_error=False)
    errors = r.errors
    return (len(errors) == 1 and isinstance(errors[0].exception, StepTenFailed)
            and r.transaction.state == "reverted"
            and _Counts.compensations_of_done - done_before == STEPS - 1)  # the 9 completed steps


async def w2(scale: float) -> dict[str, Any]:
    for i in range(scaled(300, scale)):  # warm-up
        await _w2_once(i)
    settle()
    runs = scaled(1000, scale)
    ok = True
    _Counts.compensations = 0
    _Counts.compensations_of_done = 0
    t0 = time.perf_counter()
    for i in range(runs):
        if not await _w2_once(i):
            ok = False
    total_s = time.perf_counter() - t0
    ok = ok and _Counts.compensations_of_done == runs * (STEPS - 1)
    comp_per_run = _Counts.compensations / runs
    steps_per_run = STEPS + comp_per_run
    return {"workload": "W2", "name": "compensate", "runs": runs,
            "steps_per_run": int(steps_per_run) if steps_per_run.is_integer() else steps_per_run,
            "concurrency": 1, "total_s": total_s, "ok": ok,
            "compensations_per_run": int(comp_per_run) if comp_per_run.is_integer() else comp_per_run,
            "note": "stepwork, like Medusa, also runs the failing step's own compensation "
                    "(10 per run, 9 of completed steps)"}


# -------------------------------------------------------------------------------------- W3 parallel
def _sleepy_step(i: int) -> Any:
    async def invoke(n: int) -> StepResponse[int, int]:
        await asyncio.sleep(0.001)
        return StepResponse(n + i)

    return create_step(f"w3-step-{i + 1}", invoke)


par_steps = [_sleepy_step(i) for i in range(STEPS)]


def _parallel(input: Any) -> WorkflowResponse[Any]:
    results = parallelize(*(s(input) for s in par_steps))
    return WorkflowResponse(results)


par_wf = create_workflow("w3-parallel", _parallel)


async def _plain_timers() -> None:
    await asyncio.gather(*(asyncio.sleep(0.001) for _ in range(STEPS)))


async def w3(scale: float) -> dict[str, Any]:
    # Timer floor of this runtime: the same 10 concurrent 1 ms timers, no engine, same process.
    for _ in range(scaled(20, scale)):
        await _plain_timers()
    floor_runs = scaled(200, scale)
    tb = time.perf_counter()
    for _ in range(floor_runs):
        await _plain_timers()
    floor_us = (time.perf_counter() - tb) * 1e6 / floor_runs

    for i in range(scaled(50, scale)):  # warm-up
        await par_wf.run(i)
    settle()
    runs = scaled(200, scale)
    ok = True
    t0 = time.perf_counter()
    for i in range(runs):
        result = (await par_wf.run(i)).result
        if not isinstance(result, (list, tuple)) or len(result) != STEPS or result[9] != i + 9:
            ok = False
    total_s = time.perf_counter() - t0
    per_run_us = total_s * 1e6 / runs
    return {"workload": "W3", "name": "parallel", "runs": runs, "steps_per_run": STEPS, "concurrency": 1,
            "total_s": total_s, "ok": ok, "timer_floor_us_per_run": round(floor_us, 1),
            "overhead_us_per_run": round(per_run_us - floor_us, 1)}


# --------------------------------------------------------------------------------------- W4 fan-out
async def w4(scale: float) -> dict[str, Any]:
    # warm-up: the W1 workflow, sequential then a small concurrent batch
    for i in range(scaled(1000, scale)):
        await linear_wf.run(i)
    await asyncio.gather(*(linear_wf.run(i) for i in range(scaled(100, scale))))
    settle()
    runs = scaled(1000, scale)
    t0 = time.perf_counter()
    results = await asyncio.gather(*(linear_wf.run(i) for i in range(runs)))
    total_s = time.perf_counter() - t0
    ok = len(results) == runs and all(r.result == i + STEPS for i, r in enumerate(results))
    return {"workload": "W4", "name": "fanout-throughput", "runs": runs, "steps_per_run": STEPS,
            "concurrency": runs, "total_s": total_s, "ok": ok}


# ---------------------------------------------------------------------------------------- W5 nested
sub_steps = [create_step(f"w5-sub-step-{i}", _adder) for i in (1, 2, 3)]


def _sub(input: Any) -> WorkflowResponse[Any]:
    a = sub_steps[0](input)
    b = sub_steps[1](a)
    c = sub_steps[2](b)
    return WorkflowResponse(c)


sub_wf = create_workflow("w5-sub", _sub)


def _nested(input: Any) -> WorkflowResponse[Any]:
    a = sub_wf.run_as_step(input)
    b = sub_wf.run_as_step(a).config(name="w5-sub-2")
    c = sub_wf.run_as_step(b).config(name="w5-sub-3")
    return WorkflowResponse(c)


nested_wf = create_workflow("w5-nested", _nested)


async def w5(scale: float) -> dict[str, Any]:
    for i in range(scaled(300, scale)):  # warm-up
        await nested_wf.run(i)
    settle()
    runs = scaled(1000, scale)
    ok = True
    t0 = time.perf_counter()
    for i in range(runs):
        r = await nested_wf.run(i)
        if r.result != i + 9:
            ok = False
    total_s = time.perf_counter() - t0
    return {"workload": "W5", "name": "nested", "runs": runs,
            "steps_per_run": 12,  # 3 sub-workflow steps in the parent + 3 x 3 leaf steps
            "concurrency": 1, "total_s": total_s, "ok": ok}


WORKLOADS: dict[str, Callable[[float], Coroutine[Any, Any, dict[str, Any]]]] = {
    "W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5,
}

RSS_BASE_MB = rss_mb()  # after loading the library and defining the workflows


def record(fields: dict[str, Any]) -> dict[str, Any]:
    """The JSON line of one workload, in the peers' shape (same keys, order and rounding as Medusa's)."""
    runs, total_s, steps = fields["runs"], fields["total_s"], fields["steps_per_run"]
    now = rss_mb()
    return {
        "peer": "stepwork",
        "peer_version": stepwork.__version__,
        "runtime": f"{platform.python_implementation()} {platform.python_version()}",
        "mode": fields.get("mode", "in-memory"),  # the stored workloads say durable-sqlite / durable-postgres
        **{k: v for k, v in fields.items() if k != "mode"},
        "runs_per_s": round(runs / total_s, 1),
        "us_per_run": round(total_s * 1e6 / runs, 2),
        "us_per_step": round(total_s * 1e6 / (runs * steps), 2),
        "total_s": round(total_s, 4),
        "rss_base_mb": round(RSS_BASE_MB, 1),
        "rss_now_mb": round(now, 1),
        # ru_maxrss and statm are read from separately maintained kernel counters; the peak can lag a
        # fresh reading by a few pages, so it is never reported below the current RSS.
        "peak_rss_mb": round(max(peak_rss_mb(), now), 1),
        **({"vm_hwm_mb": round(max(hwm, now), 1)} if (hwm := vm_hwm_mb()) is not None else {}),
    }
