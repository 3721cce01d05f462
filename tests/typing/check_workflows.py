"""Static checks: create_workflow / @workflow give Workflow[I, O]; running gives WorkflowResult[O].

Type-checked only (see mypy.ini); never executed.
"""

from __future__ import annotations

from typing import assert_type

from stepwork import (
    Ref,
    StepContext,
    StepRef,
    StepResponse,
    Workflow,
    WorkflowResponse,
    WorkflowResult,
    WorkflowRunner,
    create_step,
    create_workflow,
    step,
    workflow,
)


def invoke_double(value: int, ctx: StepContext) -> int:
    return value * 2


@step("describe")
async def describe(value: int, ctx: StepContext) -> StepResponse[dict[str, int], int]:
    return StepResponse({"value": value}, value)


double = create_step("double", invoke_double)

# --- create_workflow: composer returning WorkflowResponse[O], Ref[O] / StepRef[O], or None ------


def compose_response(input: Ref[int]) -> WorkflowResponse[dict[str, int]]:
    return WorkflowResponse(describe(double(input)))


def compose_ref(input: Ref[int]) -> StepRef[int]:
    return double(input)


def compose_nothing(input: Ref[int]) -> None:
    double(input)


wf_response = create_workflow("wf-response", compose_response)
wf_ref = create_workflow({"name": "wf-ref"}, compose_ref)
wf_nothing = create_workflow("wf-nothing", compose_nothing)

assert_type(wf_response, Workflow[int, dict[str, int]])
assert_type(wf_ref, Workflow[int, int])
assert_type(wf_nothing, Workflow[int, None])

# --- @workflow: the same shapes ----------------------------------------------------------------


@workflow("deco-wf-response")
def deco_wf_response(input: Ref[str]) -> WorkflowResponse[list[int]]:
    return WorkflowResponse([1, 2])


@workflow({"name": "deco-wf-ref"})
def deco_wf_ref(input: Ref[int]) -> Ref[dict[str, int]]:
    return describe(input)


assert_type(deco_wf_response, Workflow[str, list[int]])
assert_type(deco_wf_ref, Workflow[int, dict[str, int]])

# --- running: await wf.run(...), wf.run_sync(...), wf(container).run(...) -------------------------


async def check_run() -> None:
    res = await wf_response.run(3)
    assert_type(res, WorkflowResult[dict[str, int]])
    assert_type(res.result, dict[str, int])
    assert_type(res.result["value"], int)
    assert_type((await wf_ref.run(3)).result, int)
    assert_type((await wf_nothing.run(3)).result, None)
    assert_type((await deco_wf_response.run("x", throw_on_error=False)).result, list[int])

    runner = wf_ref(None)
    assert_type(runner, WorkflowRunner[int, int])
    assert_type(await runner.run(3), WorkflowResult[int])

    # ---- mistakes that must be reported ----
    await wf_ref.run("3")  # type: ignore[arg-type]  # input of the wrong type
    await deco_wf_response.run(3)  # type: ignore[arg-type]
    await runner.run("3")  # type: ignore[arg-type]
    _ = res.result.missing  # type: ignore[attr-defined]  # the result is a dict, not a Ref
    (await wf_ref.run(3)).result.upper()  # type: ignore[attr-defined]  # the result is an int
    text: str = res.result  # type: ignore[assignment]
    del text


def check_run_sync() -> None:
    res = wf_ref.run_sync(3)
    assert_type(res, WorkflowResult[int])
    assert_type(res.result, int)
    assert_type(deco_wf_ref.run_sync(1).result, dict[str, int])
    assert_type(wf_ref(None).run_sync(3).result, int)

    # ---- mistakes that must be reported ----
    wf_ref.run_sync("3")  # type: ignore[arg-type]
    deco_wf_response.run_sync([1])  # type: ignore[arg-type]
    wf_ref(None).run_sync(b"3")  # type: ignore[arg-type]
    res.result.items()  # type: ignore[attr-defined]  # the result is an int


# --- a workflow used as a step in another composer ---------------------------------------------


def compose_parent(input: Ref[int]) -> WorkflowResponse[int]:
    nested = wf_response.run_as_step(input)
    assert_type(nested, StepRef[dict[str, int]])
    assert_type(wf_ref.run_as_step(5), StepRef[int])
    wf_ref.run_as_step("5")  # type: ignore[arg-type]
    deco_wf_response.run_as_step(input)  # type: ignore[arg-type]  # Ref[int] to a str workflow
    return WorkflowResponse(wf_ref.run_as_step(input))


assert_type(create_workflow("wf-parent", compose_parent), Workflow[int, int])
