"""`stepwork graph`: stages in order, parallel branches, `when` branches, nested workflows and async
steps, drawn as text, Mermaid and DOT."""

from __future__ import annotations

import re

from stepwork import WorkflowResponse, create_step, create_workflow, parallelize, when
from stepwork.cli.drawing import build_graph, render
from tests.cli.conftest import Cli


def _workflow(name: str) -> object:
    step = create_step("a", lambda i: i)
    child = create_workflow(f"{name}-child", lambda i: WorkflowResponse(create_step("c1", lambda x: x)(i)))

    def compose(input: object) -> WorkflowResponse[object]:
        first = step(input)
        parallelize(create_step("b1", lambda i: i)(first), create_step("b2", lambda i: i)(first))
        when(input, lambda i: bool(i)).then(lambda: create_step({"name": "w", "async": True}, lambda i: i)(first))
        return WorkflowResponse(child.run_as_step(first))
    return create_workflow(name, compose)


def test_text_shows_stages_parallel_when_async_and_the_nested_workflow(wf_name: str) -> None:
    text = render(build_graph(_workflow(wf_name).compiled), "text")  # type: ignore[attr-defined]
    assert text.splitlines() == [
        wf_name,
        "├─ 1. a",
        "├─ 2. parallel",
        "│     ├─ b1",
        "│     └─ b2",
        "├─ 3. (when when-1) w [async]",
        f"└─ 4. {wf_name}-child-as-step [workflow {wf_name}-child]",
        "      └─ 1. c1",
    ]


def test_mermaid_fans_out_and_in_around_a_parallel_stage(wf_name: str) -> None:
    text = render(build_graph(_workflow(wf_name).compiled), "mermaid")  # type: ignore[attr-defined]
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    ids = {m.group(2): m.group(1) for m in (re.match(r'\s*(\w+)\[\[?"([^"]+)"', line) for line in lines) if m}
    a, b1, b2, w = ids["a"], ids["b1"], ids["b2"], ids["w [async]"]
    for edge in (f"{a} --> {b1}", f"{a} --> {b2}", f"{b1} --> {w}", f"{b2} --> {w}"):
        assert f"  {edge}" in lines, edge
    assert any(re.match(r'\s*subgraph \w+ \["when when-1"\]', line) for line in lines)
    assert any(re.match(rf'\s*subgraph \w+ \["workflow {re.escape(wf_name)}-child"\]', line) for line in lines)
    assert any(" -.-> " in line for line in lines)  # the nested step points at its child workflow


def test_dot_is_a_digraph_with_a_cluster_per_when_and_per_child(wf_name: str) -> None:
    text = render(build_graph(_workflow(wf_name).compiled), "dot")  # type: ignore[attr-defined]
    assert text.startswith(f'digraph "{wf_name}" {{') and text.rstrip().endswith("}")
    assert text.count("subgraph cluster_") == 2
    assert 'label="when when-1"' in text and f'label="workflow {wf_name}-child"' in text
    assert text.count("{") == text.count("}")


def test_the_command_draws_a_workflow_of_a_module(cli: Cli) -> None:
    done = cli("graph", "app:drawn", db=False)
    assert done.code == 0, done.output
    assert done.stdout.splitlines()[:5] == ["drawn", "├─ 1. reserve-stock", "├─ 2. parallel", "│     ├─ email",
                                            "│     └─ audit"]
    assert "(when when-1) ship [async]" in done.stdout
    assert "reserve-as-step [workflow reserve]" in done.stdout
    mermaid = cli("graph", "app:drawn", "--format", "mermaid", db=False)
    assert mermaid.code == 0 and mermaid.stdout.startswith("flowchart TD\n")
