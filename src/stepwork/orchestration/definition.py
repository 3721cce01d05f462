"""The static shape of a workflow: step options, workflow options and the plan built from them.

A plan is computed once per definition. Steps run in *stages*: a stage is one step, or the steps
of one ``parallelize`` call, and a stage starts when every step of the previous one has settled.
Step ids follow Medusa's paths: ``_root.a.b``; the steps of a parallel stage are siblings under the
previous stage's last step, and the next stage hangs under the stage's last step.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any

from stepwork.errors import StepworkError

__all__ = ["Plan", "PlanStep", "StepOptions", "WorkflowOptions", "check_step_name", "parse_step_options",
           "parse_workflow_options"]

_INVALID = StepworkError.Types.INVALID_DATA


@dataclass(frozen=True, slots=True)
class StepOptions:
    """Options of one step (docs/steps.md, step options), validated."""

    name: str
    max_retries: int = 0
    retry_interval: float | None = None
    retry_backoff: float = 1.0
    retry_max_interval: float | None = None
    retry_jitter: float = 0.0
    auto_retry: bool = True
    timeout: float | None = None
    is_async: bool = False
    compensate_async: bool = False
    background_execution: bool = False
    retry_interval_awaiting: float | None = None
    max_awaiting_retries: int | None = None
    continue_on_permanent_failure: bool = False
    skip_on_permanent_failure: bool | str = False
    no_compensation: bool = False
    save_response: bool = True
    thread: bool = False

    def to_definition(self) -> dict[str, Any]:
        """The step's entry in the stored definition (camelCase, as Medusa stores it)."""
        out: dict[str, Any] = {"action": self.name, "noCompensation": self.no_compensation}
        for f in fields(self):
            if f.name in ("name", "no_compensation"):
                continue
            value = getattr(self, f.name)
            if value != f.default:
                out[_CAMEL[f.name]] = value
        return out


_STEP_KEYS = {
    "name": "name", "max_retries": "max_retries", "retry_interval": "retry_interval",
    "retry_backoff": "retry_backoff", "retry_max_interval": "retry_max_interval", "retry_jitter": "retry_jitter",
    "auto_retry": "auto_retry", "timeout": "timeout", "async": "is_async",
    "compensate_async": "compensate_async", "background_execution": "background_execution",
    "retry_interval_awaiting": "retry_interval_awaiting", "max_awaiting_retries": "max_awaiting_retries",
    "continue_on_permanent_failure": "continue_on_permanent_failure",
    "skip_on_permanent_failure": "skip_on_permanent_failure", "no_compensation": "no_compensation",
    "save_response": "save_response", "thread": "thread",
}
_CAMEL = {
    "max_retries": "maxRetries", "retry_interval": "retryInterval", "retry_backoff": "retryBackoff",
    "retry_max_interval": "retryMaxInterval", "retry_jitter": "retryJitter", "auto_retry": "autoRetry",
    "timeout": "timeout", "is_async": "async", "compensate_async": "compensateAsync",
    "background_execution": "backgroundExecution", "retry_interval_awaiting": "retryIntervalAwaiting",
    "max_awaiting_retries": "maxAwaitingRetries",
    "continue_on_permanent_failure": "continueOnPermanentFailure",
    "skip_on_permanent_failure": "skipOnPermanentFailure", "save_response": "saveResponse",
    "thread": "thread",
}
_BOOL_KEYS = {"auto_retry", "async", "compensate_async", "background_execution",
              "continue_on_permanent_failure", "no_compensation", "save_response", "thread"}
_SECONDS_KEYS = {"retry_interval", "timeout", "retry_interval_awaiting", "retry_max_interval"}
_COUNT_KEYS = {"max_retries", "max_awaiting_retries"}


def _unknown_key(kind: str, owner: str, key: object, known: Sequence[str]) -> StepworkError:
    hint = ""
    if isinstance(key, str):
        snake = "".join("_" + c.lower() if c.isupper() else c for c in key)
        close = difflib.get_close_matches(snake, known, n=1, cutoff=0.6)
        if close:
            hint = f' Did you mean "{close[0]}"?'
    return StepworkError(_INVALID, f'Unknown {kind} option "{key}" for {owner}.{hint} '
                                   f"Known options: {', '.join(sorted(known))}.")


def _seconds(owner: str, key: str, value: object, *, allow_zero: bool) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StepworkError(_INVALID, f'Option "{key}" of {owner} must be a number of seconds, '
                                      f"got {value!r}.")
    if value < 0 or (value == 0 and not allow_zero):
        raise StepworkError(_INVALID, f'Option "{key}" of {owner} must be '
                                      f"{'>= 0' if allow_zero else '> 0'} seconds, got {value!r}.")
    return value if isinstance(value, int) else float(value)  # 99999 stays 99999 in stored records


def _backoff(owner: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 1:
        raise StepworkError(_INVALID, f'Option "retry_backoff" of {owner} must be a finite number >= 1 '
                                      "(the factor each wait grows by after a failed attempt; 1 keeps the "
                                      f"wait fixed, 2 doubles it), got {value!r}.")
    return value if isinstance(value, int) else float(value)


def _jitter(owner: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= 1:
        raise StepworkError(_INVALID, f'Option "retry_jitter" of {owner} must be a number from 0 to 1 '
                                      "(the fraction of each wait that may be cut at random; 0 for exact "
                                      f"waits), got {value!r}.")
    return value if isinstance(value, int) else float(value)


def check_step_name(name: object) -> None:
    """Raise ``StepworkError`` unless ``name`` is a usable step name."""
    if not isinstance(name, str) or not name:
        raise StepworkError(_INVALID, f"A step name must be a non-empty string, got {name!r}.")
    if ":" in name:
        raise StepworkError(_INVALID, f'Step name "{name}" must not contain ":" '
                                      "(it separates the parts of idempotency keys).")


def parse_step_options(name: str, options: Mapping[str, Any], *, base: StepOptions | None = None,
                       owner: str | None = None) -> StepOptions:
    """Validate step options (snake_case keys of docs/steps.md, step options) on top of ``base``."""
    check_step_name(name)
    owner = owner or f'step "{name}"'
    values: dict[str, Any] = {} if base is None else {f.name: getattr(base, f.name) for f in fields(base)}
    values["name"] = name
    for key, value in options.items():
        attr = _STEP_KEYS.get(key) if isinstance(key, str) else None
        if attr is None:
            raise _unknown_key("step", owner, key, list(_STEP_KEYS))
        if key == "name":
            check_step_name(value)
        elif key in _BOOL_KEYS:
            if not isinstance(value, bool):
                raise StepworkError(_INVALID, f'Option "{key}" of {owner} must be True or False, '
                                              f"got {value!r}.")
        elif key in _SECONDS_KEYS:
            if value is not None:
                value = _seconds(owner, key, value, allow_zero=key == "retry_interval")
        elif key == "retry_backoff":
            value = _backoff(owner, value)
        elif key == "retry_jitter":
            value = _jitter(owner, value)
        elif key in _COUNT_KEYS:
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise StepworkError(_INVALID, f'Option "{key}" of {owner} must be an integer >= 0, '
                                              f"got {value!r}.")
            if key == "max_retries" and value is None:
                value = 0
        elif key == "skip_on_permanent_failure" and not isinstance(value, (bool, str)):
            raise StepworkError(_INVALID, f'Option "skip_on_permanent_failure" of {owner} must be a '
                                          f"bool or a step name, got {value!r}.")
        values[attr] = value
    return StepOptions(**values)


@dataclass(frozen=True, slots=True)
class WorkflowOptions:
    """Options of a workflow (docs/workflows.md), validated."""

    name: str
    store: bool = False
    retention_time: float | None = None
    idempotent: bool = False
    timeout: float | None = None
    schedule: Any = None
    version: str = "1"
    max_concurrency: int | None = None

    def to_definition(self, *, store: bool) -> dict[str, Any]:
        """The ``options`` entry of the stored execution (camelCase, with the derived ``store``).

        ``version`` appears only when it is not the default ``"1"``: the records (and so the stored
        definition hashes) of workflows defined before versions existed stay as they were."""
        out: dict[str, Any] = {"name": self.name, "store": store}
        if self.version != "1":
            out["version"] = self.version
        if self.max_concurrency is not None:
            out["maxConcurrency"] = self.max_concurrency
        if self.retention_time is not None:
            out["retentionTime"] = self.retention_time
        if self.idempotent:
            out["idempotent"] = True
        if self.timeout is not None:
            out["timeout"] = self.timeout
        if self.schedule is not None:
            out["schedule"] = self.schedule
        return out


_WORKFLOW_KEYS = ("name", "store", "retention_time", "idempotent", "timeout", "schedule", "version",
                  "max_concurrency")


def parse_workflow_options(name_or_config: str | Mapping[str, Any]) -> WorkflowOptions:
    """Validate a workflow's name or configuration mapping."""
    if isinstance(name_or_config, str):
        config: Mapping[str, Any] = {"name": name_or_config}
    elif isinstance(name_or_config, Mapping):
        config = name_or_config
    else:
        raise StepworkError(_INVALID, "A workflow needs a name (str) or a configuration mapping with "
                                      f'"name", got {name_or_config!r}.')
    name = config.get("name")
    if not isinstance(name, str) or not name:
        raise StepworkError(_INVALID, f'A workflow configuration needs a non-empty "name", got {name!r}.')
    if ":" in name:
        raise StepworkError(_INVALID, f'Workflow name "{name}" must not contain ":".')
    owner = f'workflow "{name}"'
    values: dict[str, Any] = {"name": name}
    for key, value in config.items():
        if key not in _WORKFLOW_KEYS:
            raise _unknown_key("workflow", owner, key, _WORKFLOW_KEYS)
        if key in ("store", "idempotent"):
            if not isinstance(value, bool):
                raise StepworkError(_INVALID, f'Option "{key}" of {owner} must be True or False, '
                                              f"got {value!r}.")
            values[key] = value
        elif key in ("retention_time", "timeout"):
            values[key] = None if value is None else _seconds(owner, key, value,
                                                              allow_zero=key == "retention_time")
        elif key == "schedule":
            values[key] = None if value is None else parse_schedule(owner, value)
        elif key == "version":
            values[key] = _version(owner, value)
        elif key == "max_concurrency":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise StepworkError(_INVALID, f'Option "max_concurrency" of {owner} must be a whole number of runs '
                                              f">= 1 (or None: no limit), got {value!r}.")
            values[key] = value
    return WorkflowOptions(**values)


def _version(owner: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 100 or ":" in value:
        hint = f' (write version="{value}")' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        raise StepworkError(_INVALID, f'Option "version" of {owner} must be a non-empty string of at most 100 '
                                      f'characters without ":"{hint}, got {value!r}.')
    return value


_SCHEDULE_KEYS = ("cron", "interval", "number_of_executions", "concurrency")


def parse_schedule(owner: str, value: Any) -> dict[str, Any]:
    """Validate a ``schedule``: a cron string, or ``{cron | interval, number_of_executions?,
    concurrency?}``; returns the normalized mapping."""
    from croniter import croniter  # imported when a schedule is defined

    schedule = {"cron": value} if isinstance(value, str) else value
    if not isinstance(schedule, Mapping):
        raise StepworkError(_INVALID, f'Option "schedule" of {owner} must be a cron string or a mapping, '
                                      f"got {value!r}.")
    for key in schedule:
        if key not in _SCHEDULE_KEYS:
            raise _unknown_key("schedule", owner, key, _SCHEDULE_KEYS)
    cron, interval = schedule.get("cron"), schedule.get("interval")
    if (cron is None) == (interval is None):
        raise StepworkError(_INVALID, f"The schedule of {owner} needs exactly one of \"cron\" or \"interval\".")
    out: dict[str, Any] = {"concurrency": schedule.get("concurrency", "forbid")}
    if cron is not None:
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise StepworkError(_INVALID, f"The schedule of {owner} has an invalid cron expression {cron!r}.")
        out["cron"] = cron
    else:
        out["interval"] = _seconds(owner, "schedule.interval", interval, allow_zero=False)
    count = schedule.get("number_of_executions")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise StepworkError(_INVALID, f'"number_of_executions" in the schedule of {owner} must be an integer '
                                          f">= 1, got {count!r}.")
        out["number_of_executions"] = count
    if out["concurrency"] not in ("forbid", "allow"):
        raise StepworkError(_INVALID, f'"concurrency" in the schedule of {owner} must be "forbid" or "allow", '
                                      f"got {out['concurrency']!r}.")
    return out


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One step of a plan: its position, id path and options."""

    index: int
    name: str
    id: str
    depth: int
    stage: int
    options: StepOptions
    definition: dict[str, Any] = field(compare=False)


class Plan:
    """The precomputed execution plan of a workflow definition (pure data, built once)."""

    __slots__ = ("definition", "has_async_steps", "index_by_name", "options", "save_response", "stages", "steps",
                 "store", "workflow_id")

    def __init__(self, options: WorkflowOptions, stages: Sequence[Sequence[StepOptions]]) -> None:
        self.workflow_id = options.name
        self.options = options
        steps: list[PlanStep] = []
        stage_indexes: list[tuple[int, ...]] = []
        prefix = "_root"
        for stage_no, stage in enumerate(stages):
            members: list[int] = []
            for opts in stage:
                step_id = f"{prefix}.{opts.name}"
                steps.append(PlanStep(len(steps), opts.name, step_id, stage_no + 1, stage_no, opts,
                                      opts.to_definition()))
                members.append(len(steps) - 1)
            stage_indexes.append(tuple(members))
            prefix = steps[-1].id
        self.steps: tuple[PlanStep, ...] = tuple(steps)
        self.stages: tuple[tuple[int, ...], ...] = tuple(stage_indexes)
        self.index_by_name = {s.name: s.index for s in steps}
        self.save_response = tuple(s.options.save_response for s in steps)
        self._check_skip_targets()
        self.has_async_steps = any(s.options.is_async or s.options.compensate_async for s in steps)
        self.store = (
            options.store or self.has_async_steps or options.idempotent
            or options.retention_time is not None or options.timeout is not None
            or options.schedule is not None
            or any(s.options.timeout is not None or s.options.retry_interval is not None
                   or s.options.retry_interval_awaiting is not None or not s.options.auto_retry
                   for s in steps)
        )
        self.definition = self._definition_tree()

    def _check_skip_targets(self) -> None:
        for s in self.steps:
            target = s.options.skip_on_permanent_failure
            if isinstance(target, str):
                later = [t.name for t in self.steps if t.stage > s.stage]
                if target not in later:
                    raise StepworkError(
                        _INVALID, f'Step "{s.name}" of workflow "{self.workflow_id}" has '
                                  f'skip_on_permanent_failure="{target}", but no later step has that name. '
                                  f"Later steps: {', '.join(later) or '(none)'}.")

    def _definition_tree(self) -> dict[str, Any]:
        root: dict[str, Any] = {}
        parent = root
        for stage in self.stages:
            nodes = [dict(self.steps[i].definition) for i in stage]
            parent["next"] = nodes[0] if len(nodes) == 1 else nodes
            parent = nodes[-1]
        return root

    def step(self, name: str) -> PlanStep:
        """The step called ``name``; ``StepworkError`` (``not_found``) listing the steps otherwise."""
        index = self.index_by_name.get(name)
        if index is None:
            raise StepworkError(StepworkError.Types.NOT_FOUND,
                                f'Workflow "{self.workflow_id}" has no step "{name}". '
                                f"Its steps: {', '.join(self.index_by_name) or '(none)'}.")
        return self.steps[index]

    def stage_of(self, index: int) -> int:
        """The stage number of step ``index``."""
        return self.steps[index].stage
