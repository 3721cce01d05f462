"""Static checks: create_step / @step infer Step[I, O]; calling a step gives StepRef[O].

Type-checked only (see mypy.ini); never executed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_type

from stepwork import Ref, Step, StepContext, StepRef, StepResponse, create_step, step

# --- create_step: the four invoke shapes ------------------------------------------------------


def invoke_sync_plain(value: int, ctx: StepContext) -> str:
    return str(value)


def invoke_sync_response(value: int, ctx: StepContext) -> StepResponse[str, int]:
    return StepResponse(str(value), value)


async def invoke_async_plain(value: int, ctx: StepContext) -> list[str]:
    return [str(value)]


async def invoke_async_response(value: str, ctx: StepContext) -> StepResponse[dict[str, int], str]:
    return StepResponse({value: len(value)}, value)


def compensate_int(value: int, ctx: StepContext) -> None:
    return None


sync_plain = create_step("sync-plain", invoke_sync_plain)
sync_response = create_step("sync-response", invoke_sync_response, compensate_int)
async_plain = create_step({"name": "async-plain", "max_retries": 2}, invoke_async_plain)
async_response = create_step("async-response", invoke_async_response)

assert_type(sync_plain, Step[int, str])
assert_type(sync_response, Step[int, str])  # the output, not the StepResponse
assert_type(async_plain, Step[int, list[str]])  # the awaited value, not the coroutine
assert_type(async_response, Step[str, dict[str, int]])

# --- @step decorator: the same four shapes ----------------------------------------------------


@step("deco-sync-plain")
def deco_sync_plain(value: int, ctx: StepContext) -> float:
    return value / 2


@step()
def deco_sync_response(value: str, ctx: StepContext) -> StepResponse[int, str]:
    return StepResponse(len(value), value)


@step({"name": "deco-async-plain"})
async def deco_async_plain(value: float, ctx: StepContext) -> bool:
    return value > 0


@step("deco-async-response")
async def deco_async_response(value: bytes, ctx: StepContext) -> StepResponse[tuple[int, str], None]:
    return StepResponse((len(value), value.decode()))


assert_type(deco_sync_plain, Step[int, float])
assert_type(deco_sync_response, Step[str, int])
assert_type(deco_async_plain, Step[float, bool])
assert_type(deco_async_response, Step[bytes, tuple[int, str]])


# .compensate returns the function unchanged
@deco_sync_response.compensate
def undo_deco_sync_response(compensate_input: str, ctx: StepContext) -> None:
    return None


def check_compensate_keeps_signature(ctx: StepContext) -> None:
    kept: Callable[[str, StepContext], None] = undo_deco_sync_response
    assert_type(undo_deco_sync_response("x", ctx), None)
    undo_deco_sync_response(1, ctx)  # type: ignore[arg-type]  # still the original signature
    del kept


# --- calling a step (inside a composer) gives StepRef[O] --------------------------------------


def compose_calls(number: Ref[int], text: Ref[str]) -> None:
    # a literal of the input type, a Ref of it, or nothing
    assert_type(sync_plain(1), StepRef[str])
    assert_type(sync_plain(number), StepRef[str])
    assert_type(sync_response(number), StepRef[str])
    assert_type(async_plain(number), StepRef[list[str]])
    assert_type(async_response(text), StepRef[dict[str, int]])
    assert_type(deco_async_response(b"x"), StepRef[tuple[int, str]])
    assert_type(sync_plain(), StepRef[str])

    # a step's reference feeds the next step
    label = sync_plain(number)
    assert_type(async_response(label), StepRef[dict[str, int]])
    assert_type(deco_sync_response(label), StepRef[int])

    # StepRef.config keeps the type; Ref is covariant (Ref[bool] is a Ref[int])
    assert_type(sync_plain(number).config(name="renamed"), StepRef[str])
    flag: Ref[bool] = deco_async_plain(1.5)
    assert_type(sync_plain(flag), StepRef[str])
    as_ref: Ref[str] = label  # a StepRef is a Ref

    # ---- mistakes that must be reported ----
    sync_plain("1")  # type: ignore[arg-type]  # literal of the wrong type
    sync_plain(text)  # type: ignore[arg-type]  # Ref of the wrong type
    async_response(number)  # type: ignore[arg-type]  # Ref[int] to a str step
    deco_sync_plain(label)  # type: ignore[arg-type]  # StepRef[str] to an int step
    wrong: StepRef[int] = sync_plain(number)  # type: ignore[assignment]
    del as_ref, wrong


# --- mixed returns and one-argument invoke functions ------------------------------------------


def invoke_mixed(value: int, ctx: StepContext) -> str | StepResponse[str, int]:
    return str(value) if value else StepResponse("zero", 0)


async def invoke_async_mixed(value: int, ctx: StepContext) -> float | StepResponse[float, int]:
    return float(value)


def invoke_one_arg(value: int) -> str:
    return str(value)


assert_type(create_step("mixed", invoke_mixed), Step[int, str])
assert_type(create_step("async-mixed", invoke_async_mixed), Step[int, float])
one_arg = create_step("one-arg", invoke_one_arg)
assert_type(one_arg, Step[int, str])
