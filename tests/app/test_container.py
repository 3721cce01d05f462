"""Container scopes: a child resolves its own registrations first, then its parent's."""

from __future__ import annotations

import pytest

from stepwork import Container, Modules, StepworkError, WorkflowEngine, create_step, create_workflow


def test_a_scope_resolves_its_own_then_its_parents() -> None:
    """Registrations in the scope shadow the parent's; the parent never sees the scope's."""
    root = Container({"db": "root-db", "logger": "root-logger"})
    request = root.scope({"user": "ada"})
    request.register("logger", "request-logger")
    assert request.resolve("db") == "root-db"
    assert request.resolve("logger") == "request-logger" and root.resolve("logger") == "root-logger"
    assert request.resolve("user") == "ada" and not root.has("user") and request.has("user")
    assert root.resolve_optional("user") is None and request.parent is root
    nested = request.create_scope()
    assert nested.resolve("user") == "ada" and nested.names() == ["db", "logger", "user"]


def test_unknown_names_list_everything_resolvable() -> None:
    """not_found names the missing service and lists the scope's and the parents' names."""
    with pytest.raises(StepworkError) as err:
        Container({"a": 1}).scope({"b": 2}).resolve("c")
    assert err.value.type == "not_found"
    assert '"c"' in err.value.message and "a, b" in err.value.message


async def test_a_run_with_a_scoped_container_uses_the_parents_engine(wf_name: str) -> None:
    """wf(scope).run() finds the engine in the parent and the step sees the scope's values."""
    seen = []
    s = create_step("who", lambda _, ctx: seen.append((ctx.container.resolve("user"),
                                                       ctx.container.resolve(Modules.WORKFLOW_ENGINE))))
    wf = create_workflow(wf_name, lambda: s())
    async with WorkflowEngine("sqlite://") as engine:
        result = await wf(engine.container.scope({"user": "ada"})).run()
    assert result.transaction.state == "done"
    assert seen == [("ada", engine)]
