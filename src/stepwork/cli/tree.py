"""One stored execution drawn as a tree: its stages and steps, their states, outputs and errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text
from rich.tree import Tree

from stepwork.cli.console import state_text, to_json, when
from stepwork.engine.records import WorkflowExecution

__all__ = ["execution_tree"]

_MAX_VALUE = 300


def _value(value: Any) -> str:
    text = to_json(value, indent=None)
    return text if len(text) <= _MAX_VALUE else text[:_MAX_VALUE - 1] + "…"


def _states(record: Mapping[str, Any], key: str) -> Text:
    part = record.get(key) or {}
    text = state_text(str(part.get("state", "not_started")))
    status = str(part.get("status", "idle"))
    if status not in ("idle", "ok"):
        text.append(" / ").append_text(state_text(status))
    return text


def _step(parent: Tree, record: Mapping[str, Any], number: str, data: Mapping[str, Any],
          errors: list[Mapping[str, Any]]) -> None:
    name = str((record.get("definition") or {}).get("action") or record.get("id"))
    label = Text.assemble((number, "dim"), (name, "bold"), "  invoke ", _states(record, "invoke"),
                          "  compensate ", _states(record, "compensate"),
                          (f"  attempts {record.get('invokeAttempts') or record.get('attempts', 0)}", "dim"))
    if (record.get("definition") or {}).get("async"):
        label.append("  async", style="cyan")
    node = parent.add(label)
    if name in (data.get("invoke") or {}):
        node.add(Text.assemble(("output      ", "dim"), _value(data["invoke"][name])))
    if name in (data.get("compensate") or {}):
        node.add(Text.assemble(("compensated ", "dim"), _value(data["compensate"][name])))
    for error in errors:
        if error.get("action") == name:
            details = error.get("error") or {}
            node.add(Text.assemble((f"error ({error.get('handler_type')}) ", "dim"),
                                   (f"{details.get('name', 'Error')}: {details.get('message', '')}", "red")))


def execution_tree(execution: WorkflowExecution) -> Tree:
    """The tree of ``execution``: a header, the input, then each stage's steps (parallel ones grouped)."""
    record = execution.execution or {}
    context = execution.context or {}
    data = context.get("data") or {}
    errors = [e for e in context.get("errors") or [] if isinstance(e, Mapping)]
    tree = Tree(Text.assemble((execution.id, "bold"), "  ", execution.workflow_id, "  ",
                              state_text(execution.state)))
    tree.add(Text.assemble(("transaction ", "dim"), execution.transaction_id, ("   run ", "dim"), execution.run_id))
    tree.add(Text.assemble(("created     ", "dim"), when(int(execution.created_at.timestamp() * 1000)),
                           ("   updated ", "dim"), when(int(execution.updated_at.timestamp() * 1000))))
    if "payload" in data:
        tree.add(Text.assemble(("input       ", "dim"), _value(data["payload"])))
    stages: dict[int, list[Mapping[str, Any]]] = {}
    for step_id, step in (record.get("steps") or {}).items():
        if step_id != "_root":
            stages.setdefault(int(step.get("depth") or 0), []).append(step)
    for number, depth in enumerate(sorted(stages), 1):
        steps = stages[depth]
        if len(steps) == 1:
            _step(tree, steps[0], f"{number}. ", data, errors)
            continue
        group = tree.add(Text.assemble((f"{number}. ", "dim"), ("parallel", "italic")))
        for step in steps:
            _step(group, step, "", data, errors)
    for error in errors:
        if not any(error.get("action") == (s.get("definition") or {}).get("action")
                   for steps in stages.values() for s in steps):
            details = error.get("error") or {}
            tree.add(Text.assemble(("error ", "dim"), (f"{details.get('name', 'Error')}: "
                                                       f"{details.get('message', '')}", "red")))
    return tree
