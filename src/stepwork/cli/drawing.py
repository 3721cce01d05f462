"""The step graph of a compiled workflow, and three drawings of it: Mermaid, Graphviz DOT, plain text.

The graph is read from the compiled plan: its stages (a stage is one step, or the steps of one
``parallelize``), each step's options (async, background, retries, timeout), the ``when``
conditions a step sits under, hooks, and the child workflow of a nested step (drawn too).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from stepwork.engine.compiled import CompiledWorkflow, StepHandler
from stepwork.engine.registry import registered_workflows

__all__ = ["FORMATS", "Graph", "Node", "build_graph", "render"]

FORMATS = ("mermaid", "dot", "text")


@dataclass(slots=True)
class Node:
    """One step: its name, kind, markers (``async``, ``retries: 2``...), ``when`` groups, child graph."""

    name: str
    kind: str
    markers: list[str]
    conditions: tuple[str, ...]
    child: Graph | None = None

    @property
    def label(self) -> str:
        """The name followed by its markers in brackets."""
        return self.name + "".join(f" [{m}]" for m in self.markers)


@dataclass(slots=True)
class Graph:
    """A workflow's stages of nodes."""

    name: str
    stages: list[list[Node]] = field(default_factory=list)


def _markers(handler: StepHandler, child: Graph | None) -> list[str]:
    opts = handler.step.options
    marks: list[str] = []
    if handler.kind == "nested":
        marks.append(f"workflow {child.name}" if child is not None else "nested workflow")
    elif handler.kind == "hook":
        marks.append("hook")
    elif handler.kind == "hook-result":
        marks.append("hook result")
    if opts.is_async and handler.kind != "nested":
        marks.append("async")
    if opts.background_execution:
        marks.append("background")
    if opts.compensate_async:
        marks.append("compensate async")
    if opts.max_retries:
        marks.append(f"retries: {opts.max_retries}")
    if opts.timeout is not None:
        marks.append(f"timeout: {opts.timeout:g}s")
    return marks


def _child_of(handler: StepHandler) -> CompiledWorkflow | None:
    """The child workflow a nested step runs (captured by its invoke), else the registered one."""
    for cell in getattr(handler.raw_invoke, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(value, CompiledWorkflow):
            return value
    workflow = registered_workflows().get(handler.name.removesuffix("-as-step"))
    return None if workflow is None else workflow.compiled


def build_graph(compiled: CompiledWorkflow, depth: int = 0) -> Graph:
    """The graph of ``compiled`` (nested workflows drawn down to 10 levels)."""
    plan = compiled.plan
    graph = Graph(plan.workflow_id)
    for stage in plan.stages:
        nodes: list[Node] = []
        for index in stage:
            handler = compiled.handlers[index]
            child = None
            if handler.kind == "nested" and depth < 10:
                child_compiled = _child_of(handler)
                child = None if child_compiled is None else build_graph(child_compiled, depth + 1)
            nodes.append(Node(handler.name, handler.kind, _markers(handler, child),
                              tuple(c.label for c in handler.conditions), child))
        graph.stages.append(nodes)
    return graph


def render(graph: Graph, fmt: str) -> str:
    """The graph drawn in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "mermaid":
        return "\n".join(_Mermaid().draw(graph))
    if fmt == "dot":
        return "\n".join(_Dot().draw(graph))
    return "\n".join(_text(graph))


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


class _Ids:
    def __init__(self) -> None:
        self.count = 0

    def new(self, prefix: str = "s") -> str:
        self.count += 1
        return f"{prefix}{self.count}"


def _edges(graph: Graph, ids: dict[int, str], start: str, end: str) -> Iterator[tuple[str, str]]:
    previous = [start]
    for stage in graph.stages:
        current = [ids[id(node)] for node in stage]
        for a in previous:
            for b in current:
                yield a, b
        previous = current
    for a in previous:
        yield a, end


def _groups(graph: Graph) -> dict[tuple[str, ...], list[Node]]:
    groups: dict[tuple[str, ...], list[Node]] = {}
    for stage in graph.stages:
        for node in stage:
            groups.setdefault(node.conditions, []).append(node)
    return groups


class _Mermaid:
    def __init__(self) -> None:
        self.ids = _Ids()

    def draw(self, graph: Graph) -> Iterator[str]:
        yield "flowchart TD"
        yield from self.body(graph, "  ")

    def body(self, graph: Graph, pad: str) -> Iterator[str]:
        start, end = self.ids.new("start"), self.ids.new("end")
        ids = {id(node): self.ids.new() for stage in graph.stages for node in stage}
        yield f'{pad}{start}(["{graph.name}"])'
        yield f'{pad}{end}(["end"])'
        for conditions, nodes in _groups(graph).items():
            inner = pad
            if conditions:
                yield f'{pad}subgraph {self.ids.new("when")} [{_quote("when " + " / ".join(conditions))}]'
                inner = pad + "  "
            for node in nodes:
                shape = ("[[", "]]") if node.kind == "nested" else ("{{", "}}") if node.kind == "hook" else ("[", "]")
                yield f"{inner}{ids[id(node)]}{shape[0]}{_quote(node.label)}{shape[1]}"
            if conditions:
                yield f"{pad}end"
        for a, b in _edges(graph, ids, start, end):
            yield f"{pad}{a} --> {b}"
        for stage in graph.stages:
            for node in stage:
                if node.child is not None:
                    sub = self.ids.new("child")
                    yield f'{pad}subgraph {sub} [{_quote("workflow " + node.child.name)}]'
                    yield from self.body(node.child, pad + "  ")
                    yield f"{pad}end"
                    yield f"{pad}{ids[id(node)]} -.-> {sub}"


class _Dot:
    def __init__(self) -> None:
        self.ids = _Ids()

    def draw(self, graph: Graph) -> Iterator[str]:
        yield f"digraph {_quote(graph.name)} {{"
        yield "  rankdir=TB;"
        yield '  node [shape=box, style=rounded, fontname="Helvetica"];'
        yield from self.body(graph, "  ")
        yield "}"

    def body(self, graph: Graph, pad: str) -> Iterator[str]:
        start, end = self.ids.new("start"), self.ids.new("end")
        ids = {id(node): self.ids.new() for stage in graph.stages for node in stage}
        yield f"{pad}{start} [label={_quote(graph.name)}, shape=oval];"
        yield f'{pad}{end} [label="end", shape=oval];'
        for conditions, nodes in _groups(graph).items():
            inner = pad
            if conditions:
                yield f"{pad}subgraph cluster_{self.ids.new('when')} {{"
                yield f'{pad}  label={_quote("when " + " / ".join(conditions))}; style=dashed;'
                inner = pad + "  "
            for node in nodes:
                shape = ", peripheries=2" if node.kind == "nested" else ", shape=hexagon" if node.kind == "hook" else ""
                yield f"{inner}{ids[id(node)]} [label={_quote(node.label)}{shape}];"
            if conditions:
                yield f"{pad}}}"
        for a, b in _edges(graph, ids, start, end):
            yield f"{pad}{a} -> {b};"
        for stage in graph.stages:
            for node in stage:
                if node.child is not None:
                    yield f"{pad}subgraph cluster_{self.ids.new('child')} {{"
                    yield f'{pad}  label={_quote("workflow " + node.child.name)};'
                    child_lines = list(self.body(node.child, pad + "  "))
                    yield from child_lines
                    yield f"{pad}}}"
                    first = child_lines[0].strip().split(" ", 1)[0]
                    yield f"{pad}{ids[id(node)]} -> {first} [style=dashed];"


def _text(graph: Graph, pad: str = "") -> Iterator[str]:
    if not pad:
        yield graph.name
    for number, stage in enumerate(graph.stages, 1):
        last = number == len(graph.stages)
        branch, cont = ("└─ ", "   ") if last else ("├─ ", "│  ")
        if len(stage) == 1:
            node = stage[0]
            yield f"{pad}{branch}{number}. {_when(node)}{node.label}"
            if node.child is not None:
                yield from _text(node.child, pad + cont + "   ")
            continue
        yield f"{pad}{branch}{number}. parallel"
        for k, node in enumerate(stage):
            sub_last = k == len(stage) - 1
            sub_branch, sub_cont = ("└─ ", "   ") if sub_last else ("├─ ", "│  ")
            yield f"{pad}{cont}   {sub_branch}{_when(node)}{node.label}"
            if node.child is not None:
                yield from _text(node.child, pad + cont + "   " + sub_cont)


def _when(node: Node) -> str:
    return "".join(f"(when {c}) " for c in node.conditions)

