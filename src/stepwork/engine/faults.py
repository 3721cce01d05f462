"""Named fault points: places in the engine where a test can make the process crash or raise.

Off by default (one dictionary check each). Tests arm them to reproduce crash windows exactly:
``arm("step.returned:charge", "kill")`` kills the process right after step ``charge`` returned and
before its result is checkpointed. A worker process is armed through the environment variable
``STEPWORK_FAULTS`` (``"name=action,name=action"``), read when this module is imported.

Points (``{step}`` is a step name):

- ``step.returned:{step}``: the step's invoke returned, its result is not stored yet;
- ``checkpoint.before:{step}`` / ``checkpoint.after:{step}``: around the checkpoint written when the
  step starts;
- ``compensation.returned:{step}``: the step's compensation returned, not stored yet.

Actions: ``"kill"`` (SIGKILL this process), ``"exit"`` (``os._exit(1)``), ``"raise"`` (raise
:class:`InjectedFault`), or any callable.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

__all__ = ["InjectedFault", "arm", "disarm", "fault_point"]

_armed: dict[str, Callable[[], None]] = {}


class InjectedFault(Exception):  # named for what it is: an injected fault
    """Raised by a fault point armed with ``"raise"``."""


def _action(action: str | Callable[[], None], name: str) -> Callable[[], None]:
    if callable(action):
        return action
    if action == "kill":
        return lambda: os.kill(os.getpid(), signal.SIGKILL)
    if action == "exit":
        return lambda: os._exit(1)
    if action == "raise":
        def fail() -> None:
            raise InjectedFault(f"fault injected at {name}")
        return fail
    raise ValueError(f'Unknown fault action {action!r} for {name!r}: use "kill", "exit", "raise" or a callable.')


def arm(name: str, action: str | Callable[[], None]) -> None:
    """Make fault point ``name`` perform ``action`` when reached."""
    _armed[name] = _action(action, name)


def disarm(name: str | None = None) -> None:
    """Disarm one fault point, or all of them."""
    if name is None:
        _armed.clear()
    else:
        _armed.pop(name, None)


def fault_point(name: str, detail: str) -> None:
    """Reached at ``name:detail``; does nothing unless armed."""
    if _armed:
        action = _armed.get(f"{name}:{detail}")
        if action is not None:
            action()


for _item in filter(None, os.environ.get("STEPWORK_FAULTS", "").split(",")):
    _name, _, _act = _item.partition("=")
    arm(_name.strip(), _act.strip() or "kill")
