"""The public surface: exactly these names are exported from `stepwork`, each documented."""

from __future__ import annotations

import stepwork

EXPECTED = {
    "Acknowledgement", "Container", "Hook", "Hooks", "Modules", "PermanentStepFailure", "Ref", "Step",
    "StepContext", "StepFailure", "StepRef", "StepResponse", "StepState", "StepStatus", "StepTimeoutError",
    "StepworkError", "TransactionInfo", "TransactionState", "TransactionTimeoutError", "When", "Workflow",
    "WorkflowEngine", "WorkflowExecution", "WorkflowResponse", "WorkflowResult", "WorkflowRunner", "create_hook",
    "create_step", "create_workflow", "get_workflow", "parallelize", "step", "transform", "when", "workflow",
    # events (docs/events.md)
    "Event", "EventBus", "InMemoryEventBus", "RedisEventBus", "attach_event_bus", "bind_subscribers",
    "emit_event_step", "subscriber",
    # the application layer (docs/application.md)
    "App", "Module", "Query", "use_query_graph_step",
    # observability (docs/observability.md)
    "Instrumentation", "JsonLogFormatter", "instrument",
}


def test_all_lists_exactly_the_public_names() -> None:
    """`stepwork.__all__` is the deliberate public surface; adding a name means updating this test."""
    assert set(stepwork.__all__) == EXPECTED


def test_every_public_name_is_importable_and_documented() -> None:
    """Each exported name exists and carries a docstring."""
    for name in stepwork.__all__:
        obj = getattr(stepwork, name)
        assert obj.__doc__, f"{name} has no docstring"


def test_importing_stepwork_loads_no_opentelemetry() -> None:
    """`import stepwork` never imports OpenTelemetry: only `instrument()` does (the `otel` extra)."""
    import subprocess
    import sys

    code = "import sys, stepwork; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_importing_stepwork_loads_no_database_driver() -> None:
    """`import stepwork` stays light: the PostgreSQL driver loads only when a PostgreSQL URL is used."""
    import subprocess
    import sys

    code = "import sys, stepwork; print('psycopg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
