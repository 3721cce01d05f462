"""References: derived paths, literals, nesting in containers and deep copies (SPEC §1, §3.1)."""

from __future__ import annotations

from typing import Any

import pytest

from stepwork import StepworkError, WorkflowResponse, create_step, create_workflow


def _echo(name: str) -> Any:
    return create_step(name, lambda value: value)


def _recorder(name: str, seen: list[Any]) -> Any:
    def invoke(value: Any) -> Any:
        seen.append(value)
        return value

    return create_step(name, invoke)


async def test_attribute_and_item_paths_resolve_from_mapping_output(wf_name: str) -> None:
    """ref.a, ref["a"], ref[0] and chained paths read keys and indexes of the runtime value."""
    source = create_step("source", lambda _: {"a": {"b": [10, 20, 30]}, "items": ["x", "y"]})

    def composer(inp: Any) -> WorkflowResponse[Any]:
        out = source()
        return WorkflowResponse({
            "attr": out.a.b,
            "item": out["a"]["b"],
            "index": out.a.b[1],
            "negative": out["items"][-1],
            "mixed": out.items[0],
        })

    wf = create_workflow(wf_name, composer)
    result = await wf.run()

    assert result.result == {"attr": [10, 20, 30], "item": [10, 20, 30], "index": 20, "negative": "y",
                             "mixed": "x"}


async def test_paths_on_workflow_input(wf_name: str) -> None:
    """Paths on the workflow input reference read the run's input."""
    seen: list[Any] = []
    s = _recorder("s", seen)

    wf = create_workflow(wf_name, lambda inp: s({"user": inp.user.name, "first": inp["tags"][0]}))
    await wf.run({"user": {"name": "ann"}, "tags": ["t1", "t2"]})

    assert seen == [{"user": "ann", "first": "t1"}]


async def test_attribute_path_reads_object_attributes(wf_name: str) -> None:
    """On a non-mapping value, ref.attr reads the object's attribute."""

    class Point:
        def __init__(self) -> None:
            self.x = 3

    source = create_step("source", lambda _: Point())
    wf = create_workflow(wf_name, lambda inp: WorkflowResponse(source().x))

    assert (await wf.run()).result == 3


async def test_path_through_none_or_missing_key_resolves_to_none(wf_name: str) -> None:
    """A path through None, a missing key, or an index out of range resolves to None, without error."""
    seen: list[Any] = []
    source = create_step("source", lambda _: {"present": None, "list": [1]})
    s = _recorder("s", seen)

    def composer(inp: Any) -> None:
        out = source()
        s({
            "through_none": out.present.deeper.still,
            "missing": out.absent,
            "missing_item": out["absent"]["x"],
            "out_of_range": out.list[5],
            "input_none": inp.anything,
        })

    wf = create_workflow(wf_name, composer)
    result = await wf.run(None)

    assert result.transaction.state == "done"
    assert seen == [{"through_none": None, "missing": None, "missing_item": None, "out_of_range": None,
                     "input_none": None}]


async def test_item_config_reads_output_key_while_dot_config_configures_step(wf_name: str) -> None:
    """ref["config"] reads an output key named config; step_ref.config(...) renames the step."""
    source = create_step("source", lambda _: {"config": {"debug": True}})

    def composer(inp: Any) -> Any:
        out = source().config(name="renamed-source")
        return out["config"]

    wf = create_workflow(wf_name, composer)

    assert wf.step_names == ["renamed-source"]
    assert (await wf.run()).result == {"debug": True}


async def test_config_on_derived_reference_is_an_error(wf_name: str) -> None:
    """.config(...) on a derived (non-step) reference raises StepworkError pointing to ref["config"]."""

    def composer(inp: Any) -> None:
        inp.config(name="x")

    with pytest.raises(StepworkError) as info:
        create_workflow(wf_name, composer)

    assert info.value.type == "invalid_data"
    assert 'ref["config"]' in info.value.message


@pytest.mark.parametrize("literal", [0, "", False, None, 0.0, [], {}])
async def test_falsy_literals_arrive_unchanged(wf_name: str, literal: Any) -> None:
    """A literal step argument (0, "", False, None, empty containers) reaches invoke unchanged."""
    seen: list[Any] = []
    s = _recorder("s", seen)

    wf = create_workflow(wf_name, lambda inp: s(literal))
    await wf.run()

    assert len(seen) == 1
    assert seen[0] == literal
    assert type(seen[0]) is type(literal)


async def test_call_without_argument_passes_none(wf_name: str) -> None:
    """Calling a step with no argument passes None to invoke."""
    seen: list[Any] = []
    s = _recorder("s", seen)

    wf = create_workflow(wf_name, lambda inp: s())
    await wf.run({"ignored": True})

    assert seen == [None]


async def test_falsy_workflow_input_arrives_unchanged(wf_name: str) -> None:
    """A falsy run input (0) passed as a step's whole argument arrives as 0."""
    seen: list[Any] = []
    s = _recorder("s", seen)

    wf = create_workflow(wf_name, lambda inp: s(inp))
    await wf.run(0)

    assert seen == [0]


async def test_refs_nested_in_dicts_lists_and_tuples_are_resolved(wf_name: str) -> None:
    """References at any depth inside dicts, lists and tuples are resolved; containers keep their type."""
    seen: list[Any] = []
    a = create_step("a", lambda _: {"id": 1})
    b = create_step("b", lambda _: "bee")
    s = _recorder("s", seen)

    def composer(inp: Any) -> None:
        ra = a()
        rb = b()
        s({"outer": {"list": [ra.id, rb, "lit"], "tuple": (rb, (ra, 2))}, "input": inp.k, "plain": 5})

    wf = create_workflow(wf_name, composer)
    await wf.run({"k": "v"})

    assert seen == [{"outer": {"list": [1, "bee", "lit"], "tuple": ("bee", ({"id": 1}, 2))}, "input": "v",
                     "plain": 5}]
    assert isinstance(seen[0]["outer"]["tuple"], tuple)
    assert isinstance(seen[0]["outer"]["tuple"][1], tuple)


async def test_mutating_input_does_not_affect_other_steps(wf_name: str) -> None:
    """Each step receives a deep copy: a step mutating its input never changes what another step sees."""
    seen: list[Any] = []
    source = create_step("source", lambda _: {"items": [1, 2], "meta": {"n": 1}})

    def mutate(value: Any) -> str:
        value["items"].append(99)
        value["meta"]["n"] = 1000
        value["new"] = True
        return "mutated"

    mutator = create_step("mutator", mutate)
    reader = _recorder("reader", seen)

    def composer(inp: Any) -> Any:
        out = source()
        mutator(out)
        reader(out)
        return out

    wf = create_workflow(wf_name, composer)
    result = await wf.run()

    assert seen == [{"items": [1, 2], "meta": {"n": 1}}]
    assert result.result == {"items": [1, 2], "meta": {"n": 1}}


async def test_mutating_nested_reference_does_not_affect_other_steps(wf_name: str) -> None:
    """Deep copies hold for a reference nested in a template, and for two parts of one output."""
    seen: list[Any] = []
    source = create_step("source", lambda _: {"inner": {"v": [1]}})

    def mutate(value: Any) -> None:
        value["wrapped"]["v"].append(2)
        value["again"]["v"].append(3)

    mutator = create_step("mutator", mutate)
    reader = _recorder("reader", seen)

    def composer(inp: Any) -> None:
        out = source()
        mutator({"wrapped": out.inner, "again": out.inner})
        reader(out.inner)

    wf = create_workflow(wf_name, composer)
    await wf.run()

    assert seen == [{"v": [1]}]


async def test_mutating_input_does_not_affect_callers_payload(wf_name: str) -> None:
    """A step mutating the workflow input never changes the caller's payload object or later steps."""
    seen: list[Any] = []

    def mutate(value: Any) -> None:
        value["list"].append("step")
        value["added"] = 1

    mutator = create_step("mutator", mutate)
    reader = _recorder("reader", seen)

    def composer(inp: Any) -> None:
        mutator(inp)
        reader(inp)

    payload = {"list": ["caller"]}
    wf = create_workflow(wf_name, composer)
    await wf.run(payload)

    assert payload == {"list": ["caller"]}
    assert seen == [{"list": ["caller"]}]


async def test_mutating_a_literal_template_does_not_leak_between_runs(wf_name: str) -> None:
    """A mutable literal passed to a step is copied per run: mutating it does not change the next run."""
    seen: list[Any] = []

    def mutate(value: Any) -> None:
        seen.append(list(value["list"]))
        value["list"].append("x")

    mutator = create_step("mutator", mutate)
    template = {"list": [1]}
    wf = create_workflow(wf_name, lambda inp: mutator(template))

    await wf.run()
    await wf.run()

    assert seen == [[1], [1]]
    assert template == {"list": [1]}


async def test_result_is_a_copy_of_step_output(wf_name: str) -> None:
    """The run's result is a copy: mutating it changes neither the object the step returned nor a later run."""
    shared = {"value": [1]}
    source = create_step("source", lambda _: shared)
    wf = create_workflow(wf_name, lambda inp: source())

    first = await wf.run()
    first.result["value"].append(2)

    assert shared == {"value": [1]}
    assert (await wf.run()).result == {"value": [1]}


async def test_composer_may_return_a_bare_reference_or_literal_structure(wf_name: str) -> None:
    """The composer's return value (reference, structure, literal) is resolved as the run's result."""
    a = _echo("a")

    bare = create_workflow(wf_name, lambda inp: a(inp))
    structured = create_workflow(f"{wf_name}-structured", lambda inp: {"x": [inp, 1], "y": "lit"})
    nothing = create_workflow(f"{wf_name}-none", lambda inp: None)

    assert (await bare.run(5)).result == 5
    assert (await structured.run(5)).result == {"x": [5, 1], "y": "lit"}
    assert (await nothing.run(5)).result is None
