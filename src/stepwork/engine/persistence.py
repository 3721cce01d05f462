"""Between a transaction in memory and its stored rows: step records, progress, and back.

A step row holds the step's record (states, attempts, times) and the JSON texts of its output,
compensation input and compensation output. The execution row's ``progress`` holds what belongs
to the transaction (cursor, flags, times, errors, the run context). Loading applies both to a
fresh :class:`Transaction`; outputs are restored to the producing step's annotated type.
"""

from __future__ import annotations

import json
import logging
import types
import typing
from typing import Any

from stepwork.engine.compiled import UNKNOWN as _UNKNOWN
from stepwork.engine.compiled import CompiledWorkflow, StepHandler
from stepwork.engine.step_response import StepResponse
from stepwork.orchestration.states import StepState, StepStatus, TransactionState
from stepwork.orchestration.transaction import StepFailure, Transaction
from stepwork.storage.base import StepRow
from stepwork.storage.serialization import decode, encode, restore, to_jsonable

__all__ = ["apply_progress", "apply_step_row", "encode_step_values", "error_text", "output_type", "progress_of",
           "restore_outputs", "safe_jsonable", "step_row"]

logger = logging.getLogger("stepwork.engine")

_FLAGS = ("has_failed_steps", "has_skipped_steps", "has_skipped_on_failure_steps", "has_waiting_steps",
          "has_reverted_steps")


def safe_jsonable(value: Any, where: str) -> Any:
    """``to_jsonable``, or ``None`` (logged) for a value that cannot be stored (e.g. a compensation
    input of a failed step: the failure must be recorded whatever it carried)."""
    try:
        return to_jsonable(value, where)
    except Exception as exc:  # the failure record matters more than this value
        logger.warning("%s; stored as null.", exc)
        return None


def _safe_encode(value: Any, where: str) -> str | None:
    if value is None:
        return None
    try:
        return encode(value, where)
    except Exception as exc:  # see safe_jsonable
        logger.warning("%s; stored as null.", exc)
        return None


# The text of every state and status (formatting an enum member costs more than a lookup).
_TEXT: dict[Any, str] = {**{m: m.value for m in StepState}, **{m: m.value for m in StepStatus}}


def _num(value: float | None) -> str:
    return "null" if value is None else repr(value)


def encode_step_values(name: str, save: bool, output: Any, comp: Any) -> tuple[str | None, str | None]:
    """The JSON texts of a step's output (when it is saved) and compensation input; raises
    ``invalid_data`` naming the step for a value that cannot be stored. A compensation input that is
    the output itself (a step returning a plain value) is encoded once."""
    out = encode(output, f'The output of step "{name}"') if save and output is not None else None
    if comp is None:
        return out, None
    return out, out if comp is output and out is not None else encode(comp, f'The compensation input of step "{name}"')


_TIMES: dict[float, str] = {}  # recent times as JSON text: a step's start and end records share them


def _time(value: float | None) -> str:
    """``value`` as JSON text. ``repr`` of a float costs ~1 µs, and a step's times appear in every
    record written for it (its start, its result), so recent ones are kept."""
    if value is None:
        return "null"
    text = _TIMES.get(value)
    if text is None:
        if len(_TIMES) >= 256:
            _TIMES.clear()
        text = _TIMES[value] = repr(value)
    return text


def step_row(txn: Transaction, i: int, encoded_output: str | None, encoded_comp: str | None) -> StepRow:
    """The stored row of step ``i``; ``encoded_*`` are the texts encoded when the step succeeded."""
    # Formatted directly: this runs at every checkpoint, and the values are known to be plain
    # (state names, numbers, booleans). ``_value_`` is a member's text without the ``value``
    # property's call (or the Python-level ``__hash__`` a lookup by member would cost).
    times = _TIMES
    started = txn.started_at_of[i]
    started_text = "null" if started is None else (times.get(started) or _time(started))
    last = txn.last_attempt[i]
    last_text = started_text if last == started else (
        "null" if last is None else (times.get(last) or _time(last)))
    retry = txn.retry_at[i]
    record = (f'{{"invoke":["{txn.inv_state[i]._value_}","{txn.inv_status[i]._value_}"],'
              f'"compensate":["{txn.comp_state[i]._value_}","{txn.comp_status[i]._value_}"],'
              f'"attempts":{txn.attempts[i]},"failures":{txn.failures[i]},'
              f'"startedAt":{started_text},"lastAttempt":{last_text},'
              f'"waiting":{"true" if txn.waiting[i] else "false"},'
              f'"retryAt":{"null" if retry is None else _time(retry)}')
    invoke_attempts = txn.invoke_attempts
    record += f',"invokeAttempts":{invoke_attempts[i]}}}' if invoke_attempts and i in invoke_attempts else "}"
    output = encoded_output
    if output is None and txn.outputs[i] is not None:
        output = _safe_encode(txn.outputs[i], f'The output of step "{txn.plan.steps[i].name}"')
    comp = encoded_comp
    if comp is None and txn.comp_input[i] is not None:
        comp = _safe_encode(txn.comp_input[i], f'The compensation input of step "{txn.plan.steps[i].name}"')
    comp_outputs = txn.comp_outputs
    comp_out = comp_outputs.get(txn.plan.steps[i].name) if comp_outputs else None
    return StepRow(i, record, output, comp,
                   None if comp_out is None else _safe_encode(
                       comp_out, f'The compensation output of step "{txn.plan.steps[i].name}"'))


def progress_tail(txn: Transaction, run_context: Any) -> str:
    """The part of the progress document that never changes during a run (JSON, no braces)."""
    return (f'"metadata":{json.dumps(safe_jsonable(txn.metadata, "The run metadata"))},'
            f'"context":{json.dumps(run_context)}')


def error_text(failure: StepFailure) -> str:
    """One recorded failure as JSON text (as it stands in the progress document's ``errors``)."""
    return json.dumps(safe_jsonable(failure.to_dict(), "An error record"))


def progress_of(txn: Transaction, tail: str, errors: str | None = None) -> str:
    """The transaction-wide part of the stored state, as JSON text (``tail`` from
    :func:`progress_tail`; ``errors``: the JSON array of ``txn.errors`` if the caller keeps it)."""
    if errors is None:
        errors = f"[{','.join(error_text(e) for e in txn.errors)}]"
    flags = ",".join(f'"{f}":{"true" if getattr(txn, f) else "false"}' for f in _FLAGS)
    return (f'{{"failing":{"true" if txn.failing else "false"},'
            f'"compFailed":{"true" if txn.comp_failed else "false"},"startedAt":{_num(txn.started_at)},'
            f'"timedOutAt":{_num(txn.timed_out_at)},"cancelledAt":{_num(txn.cancelled_at)},'
            f'"flags":{{{flags}}},"errors":{errors},{tail}}}')


def apply_progress(txn: Transaction, progress: dict[str, Any], state: str) -> None:
    """Restore the transaction-wide state from ``progress``."""
    txn.state = TransactionState(state)
    txn.cursor = int(progress.get("cursor", 0))  # older rows; derived from the steps when loaded
    txn.failing = bool(progress.get("failing", False))
    txn.comp_failed = bool(progress.get("compFailed", False))
    txn.started_at = progress.get("startedAt")
    txn.timed_out_at = progress.get("timedOutAt")
    txn.cancelled_at = progress.get("cancelledAt")
    for flag, value in (progress.get("flags") or {}).items():
        if flag in _FLAGS:
            setattr(txn, flag, bool(value))
    txn.errors = [StepFailure(e.get("action"), e.get("handler_type", "invoke"), e.get("error"))
                  for e in progress.get("errors") or []]


def apply_step_row(txn: Transaction, row: StepRow, handler: StepHandler) -> None:
    """Restore step ``row.index`` from its stored row."""
    i = row.index
    rec = row.record
    inv_state, inv_status = rec["invoke"]
    comp_state, comp_status = rec["compensate"]
    txn.inv_state[i] = StepState(inv_state)
    txn.inv_status[i] = StepStatus(inv_status)
    txn.comp_state[i] = StepState(comp_state)
    txn.comp_status[i] = StepStatus(comp_status)
    txn.attempts[i] = int(rec.get("attempts", 0))
    txn.failures[i] = int(rec.get("failures", 0))
    txn.started_at_of[i] = rec.get("startedAt")
    txn.last_attempt[i] = rec.get("lastAttempt")
    txn.waiting[i] = bool(rec.get("waiting", False))
    txn.retry_at[i] = rec.get("retryAt")
    if "invokeAttempts" in rec:
        if txn.invoke_attempts is None:
            txn.invoke_attempts = {}
        txn.invoke_attempts[i] = int(rec["invokeAttempts"])
    if row.output is not None:
        txn.outputs[i] = restore(decode(row.output), output_type(handler))
    if row.compensate_input is not None:
        txn.comp_input[i] = decode(row.compensate_input)
    if row.compensate_output is not None:
        txn.comp_outputs[handler.name] = decode(row.compensate_output)


def output_type(handler: StepHandler) -> Any:
    """The output type a step's invoke function is annotated with (``StepResponse[O, C]`` → ``O``),
    or ``None``; computed once per handler."""
    if handler.output_type is not _UNKNOWN:
        return handler.output_type
    annotation: Any = None
    try:
        hints = typing.get_type_hints(handler.raw_invoke)
        annotation = _unwrap(hints.get("return"))
    except Exception:  # unresolvable annotations: values are passed as stored
        annotation = None
    handler.output_type = annotation
    return annotation


def _unwrap(annotation: Any) -> Any:
    if annotation is None or annotation is type(None):
        return None
    origin = typing.get_origin(annotation)
    if origin is StepResponse:
        args = typing.get_args(annotation)
        return _unwrap(args[0]) if args else None
    if annotation is StepResponse:
        return None
    if origin is typing.Union or origin is types.UnionType:
        plain = [a for a in typing.get_args(annotation)
                 if a is not type(None) and a is not StepResponse and typing.get_origin(a) is not StepResponse]
        responses = [a for a in typing.get_args(annotation) if typing.get_origin(a) is StepResponse]
        if responses and len(plain) <= 1:
            return _unwrap(responses[0])
        return annotation
    return annotation


def restore_outputs(compiled: CompiledWorkflow, txn: Transaction, rows: list[StepRow]) -> None:
    """Apply every stored step row to ``txn``, then derive its cursor: the stages that have started
    are those with a step that is not (or not only because of an earlier failure) left unstarted."""
    handlers = compiled.handlers
    for row in rows:
        if 0 <= row.index < len(handlers):
            apply_step_row(txn, row, handlers[row.index])
    started = [s.stage for s in txn.plan.steps
               if txn.inv_state[s.index] not in (StepState.NOT_STARTED, StepState.SKIPPED_FAILURE)]
    txn.cursor = max(txn.cursor, max(started) + 1 if started else 0)

