"""Finding 1: typed step inputs, outputs and compensation inputs survive a wait.

A step annotated ``def make(input: BrandIn, ctx)`` gets a ``BrandIn`` when the run is uninterrupted;
once the run continues in another engine (after ``set_step_success``/``set_step_failure``), values
come back from the database, and they must be restored to the type the receiving function is
annotated with (not only to the producing step's return annotation). A dict given where a model is
annotated is validated into the model, or refused with ``invalid_data`` naming the step and field.
"""

# No ``from __future__ import annotations``: the step functions below are annotated with classes
# chosen per test (parametrized), which must be real objects, not strings.

import dataclasses
from typing import Any

import pytest
from pydantic import BaseModel

from stepwork import StepContext, StepResponse, StepworkError, WorkflowEngine, create_step, create_workflow

from ._helpers import skip_if_private


class BrandIn(BaseModel):
    name: str


@dataclasses.dataclass
class BrandData:
    name: str


class Listing(BaseModel):
    sku_code: str


TYPES = pytest.mark.parametrize("kind", [BrandIn, BrandData], ids=["pydantic", "dataclass"])


async def test_uninterrupted_run_passes_the_model(engine: WorkflowEngine, wf_name: str) -> None:
    """Control (holds today): without a wait, the annotated step receives the model it was given."""
    seen: list[Any] = []

    def make(input: BrandIn, ctx: StepContext) -> None:
        seen.append(input)

    s = create_step("make", make)
    wf = create_workflow({"name": wf_name, "store": True}, lambda inp: s(inp))
    await engine.run(wf, BrandIn(name="acme"))
    assert seen == [BrandIn(name="acme")]
    assert type(seen[0]) is BrandIn


@TYPES
async def test_workflow_input_after_a_wait_keeps_the_annotated_type(database_url: str, clock: Any,
                                                                     wf_name: str, kind: type) -> None:
    """The step after the wait, annotated with the input's type, receives it when another engine
    completed the wait."""
    skip_if_private(database_url)
    seen: list[Any] = []

    def make(input: kind, ctx: StepContext) -> None:  # type: ignore[valid-type]
        seen.append(input)

    wait = create_step({"name": "wait", "async": True}, lambda v: None)
    make_step = create_step("make", make)

    def compose(inp: Any) -> None:
        wait(inp)
        make_step(inp)

    wf = create_workflow({"name": wf_name, "retention_time": 60}, compose)
    async with WorkflowEngine(database_url, clock=clock) as a, WorkflowEngine(database_url, clock=clock) as b:
        first = await a.run(wf, kind(name="acme"), transaction_id="tx")
        assert first.transaction.state == "invoking"
        done = await b.set_step_success(f"{wf_name}:tx:wait:invoke", None)
    assert done.transaction.state == "done"
    assert seen == [kind(name="acme")]
    assert type(seen[0]) is kind


@TYPES
async def test_previous_output_after_a_wait_is_restored_to_the_receivers_annotation(
        database_url: str, clock: Any, wf_name: str, kind: type) -> None:
    """A step after the wait annotated with a model receives a previous (unannotated) step's output
    as that model."""
    skip_if_private(database_url)
    seen: list[Any] = []

    def use(input: kind, ctx: StepContext) -> None:  # type: ignore[valid-type]
        seen.append(input)

    first = create_step("first", lambda v: kind(name=v))  # no return annotation
    wait = create_step({"name": "wait", "async": True}, lambda v: None)
    use_step = create_step("use", use)

    def compose(inp: Any) -> None:
        made = first(inp)
        wait(inp)
        use_step(made)

    wf = create_workflow({"name": wf_name, "retention_time": 60}, compose)
    async with WorkflowEngine(database_url, clock=clock) as a, WorkflowEngine(database_url, clock=clock) as b:
        assert (await a.run(wf, "acme", transaction_id="tx")).transaction.state == "invoking"
        done = await b.set_step_success(f"{wf_name}:tx:wait:invoke", None)
    assert done.transaction.state == "done"
    assert seen == [kind(name="acme")]
    assert type(seen[0]) is kind


@TYPES
async def test_compensation_input_after_a_wait_is_restored_to_the_annotation(
        database_url: str, clock: Any, wf_name: str, kind: type) -> None:
    """A compensation annotated with a model receives its compensation input as that model when
    another engine fails the waiting step."""
    skip_if_private(database_url)
    undone: list[Any] = []

    def undo(compensate_input: kind, ctx: StepContext) -> None:  # type: ignore[valid-type]
        undone.append(compensate_input)

    first = create_step("first", lambda v: StepResponse("made", kind(name=v)), undo)
    wait = create_step({"name": "wait", "async": True}, lambda v: None)

    def compose(inp: Any) -> None:
        first(inp)
        wait(inp)

    wf = create_workflow({"name": wf_name, "retention_time": 60}, compose)
    async with WorkflowEngine(database_url, clock=clock) as a, WorkflowEngine(database_url, clock=clock) as b:
        assert (await a.run(wf, "acme", transaction_id="tx")).transaction.state == "invoking"
        final = await b.set_step_failure(f"{wf_name}:tx:wait:invoke", "declined", force_permanent_failure=True,
                                         throw_on_error=False)
    assert final.transaction.state == "reverted"
    assert undone == [kind(name="acme")]
    assert type(undone[0]) is kind


async def test_a_dict_given_for_a_model_is_validated_into_it(wf_name: str) -> None:
    """In memory, a dict that fits the annotated model reaches the step as the model."""
    seen: list[Any] = []

    def make(input: BrandIn, ctx: StepContext) -> None:
        seen.append(input)

    s = create_step("make-brand", make)
    wf = create_workflow(wf_name, lambda inp: s(inp))
    await wf.run({"name": "acme"})
    assert seen == [BrandIn(name="acme")]
    assert type(seen[0]) is BrandIn


async def test_a_dict_that_does_not_fit_the_model_is_refused_naming_step_and_field(wf_name: str) -> None:
    """In memory, ``{"sku_code": 5}`` for a step annotated with ``Listing(sku_code: str)`` is refused
    with ``invalid_data`` naming the step and the field."""
    seen: list[Any] = []

    def publish(input: Listing, ctx: StepContext) -> None:
        seen.append(input)

    s = create_step("publish-listing", publish)
    wf = create_workflow(wf_name, lambda inp: s(inp))
    with pytest.raises(StepworkError) as err:
        await wf.run({"sku_code": 5})
    assert err.value.type == "invalid_data"
    assert "publish-listing" in str(err.value)
    assert "sku_code" in str(err.value)
