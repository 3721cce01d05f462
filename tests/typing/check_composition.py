"""Static checks: transform(values, fn) gives Ref[R] for a plain or an async fn.

Type-checked only (see mypy.ini); never executed.
"""

from __future__ import annotations

from typing import Any, assert_type

from stepwork import Ref, StepContext, StepRef, Workflow, WorkflowResponse, create_step, create_workflow, transform


def to_label(values: dict[str, int]) -> str:
    return f"#{values['n']}"


def to_pair(values: object) -> tuple[str, int]:
    return (str(values), 1)


async def fetch_total(values: object) -> float:
    return 1.0


def invoke_shout(value: str, ctx: StepContext) -> str:
    return value.upper()


shout = create_step("shout", invoke_shout)


def compose(input: Ref[int]) -> WorkflowResponse[tuple[str, int]]:
    label = transform({"n": input}, to_label)
    assert_type(label, Ref[str])
    total = transform(input, fetch_total)
    assert_type(total, Ref[float])  # the awaited value, not the coroutine
    pair = transform([input, label], to_pair)
    assert_type(pair, Ref[tuple[str, int]])
    assert_type(transform(input, to_label, to_pair), Ref[Any])  # a chain of functions is untyped

    # a transform's Ref[R] feeds steps like any reference
    assert_type(shout(label), StepRef[str])

    # ---- mistakes that must be reported ----
    shout(total)  # type: ignore[arg-type]  # Ref[float] to a str step
    shout(pair)  # type: ignore[arg-type]  # Ref[tuple[str, int]] to a str step
    wrong: Ref[int] = label  # type: ignore[assignment]
    del wrong

    return WorkflowResponse(pair)


assert_type(create_workflow("with-transform", compose), Workflow[int, tuple[str, int]])


# --- a single lambda keeps its return type ----------------------------------------------------


def _label_transform(input: Ref[int]) -> None:
    as_int = transform(input, lambda v: 1)
    assert_type(as_int, Ref[int])


def _parallel_types(input: Ref[int]) -> None:
    from stepwork import create_step, parallelize

    def to_str(value: int, ctx: StepContext) -> str:
        return str(value)

    def to_float(value: int, ctx: StepContext) -> float:
        return float(value)

    a, b = parallelize(create_step("to-str", to_str)(input), create_step("to-float", to_float)(input))
    assert_type(a, StepRef[str])
    assert_type(b, StepRef[float])
