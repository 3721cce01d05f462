"""A process of another kind: it shares the database but has none of :mod:`ship_app`'s workflows.
``STEPWORK_FAULTS_DIR=DIR python -m tests.engine.faults.other_app URL``

It defines workflow ``faults-other`` only, starts an engine (recovery and timers polled every
50 ms, a 0.5 s lease), writes DIR/other.ready and stays up until it is killed. What stepwork logs
at WARNING or above goes to DIR/other.log.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from stepwork import WorkflowEngine, create_step, create_workflow
from tests.engine.faults.harness import fault_dir

other = create_workflow({"name": "faults-other", "retention_time": 600},
                        lambda inp: create_step("noop", lambda v: v)(inp))


async def _main(url: str) -> None:
    handler = logging.FileHandler(fault_dir() / "other.log")
    handler.setLevel(logging.WARNING)
    logging.getLogger("stepwork").addHandler(handler)
    async with WorkflowEngine(url, lease_ttl=0.5, poll_interval=0.05):
        (fault_dir() / "other.ready").write_text("1")
        while True:
            await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1]))
