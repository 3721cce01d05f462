"""stepwork: durable, transactional workflows for Python.

Layers (each importing only those below it)::

    orchestration  the pure state machine: plans, step states, transitions, compensation order
    storage        one store protocol; SQLite and PostgreSQL stores; payload serialization
    engine         runs executions on asyncio (one run loop, in memory or checkpointed); the
                   WorkflowEngine stores, resumes and lists them; what steps receive and return
    sdk            what users write: steps, workflows, references, transform, when, parallelize, hooks
    events         event buses (in memory, Redis), subscribers, emit_event_step, lifecycle events
    telemetry      OpenTelemetry spans of runs and steps (instrument, the otel extra), JsonLogFormatter
    app            App and Module (services, SQLAlchemy models, Alembic migrations), use_query_graph_step

``query`` (query.graph over SQLAlchemy models) sits between storage and engine: an engine
registers one over its own database.

Top-level modules (``errors``, ``container``) sit below all of them.

Everything public is importable from ``stepwork``; other modules are internal.
"""

from stepwork.app import App, Module, use_query_graph_step
from stepwork.container import Container, Modules
from stepwork.engine.context import StepContext
from stepwork.engine.engine import WorkflowEngine
from stepwork.engine.records import WorkflowExecution
from stepwork.engine.results import Acknowledgement, TransactionInfo, WorkflowResult
from stepwork.engine.step_response import StepResponse
from stepwork.errors import PermanentStepFailure, StepTimeoutError, StepworkError, TransactionTimeoutError
from stepwork.events import (
    Event,
    EventBus,
    InMemoryEventBus,
    RedisEventBus,
    attach_event_bus,
    bind_subscribers,
    emit_event_step,
    subscriber,
)
from stepwork.orchestration.states import StepState, StepStatus, TransactionState
from stepwork.orchestration.transaction import StepFailure
from stepwork.query import Query
from stepwork.sdk.builder import StepRef
from stepwork.sdk.composition import When, parallelize, transform, when
from stepwork.sdk.hooks import Hook, Hooks, create_hook
from stepwork.sdk.references import Ref
from stepwork.sdk.steps import Step, create_step, step
from stepwork.sdk.workflows import Workflow, WorkflowResponse, WorkflowRunner, create_workflow, get_workflow, workflow
from stepwork.telemetry import Instrumentation, JsonLogFormatter, instrument

__all__ = [
    "Acknowledgement",
    "App",
    "Container",
    "Event",
    "EventBus",
    "Hook",
    "Hooks",
    "InMemoryEventBus",
    "Instrumentation",
    "JsonLogFormatter",
    "Module",
    "Modules",
    "PermanentStepFailure",
    "Query",
    "RedisEventBus",
    "Ref",
    "Step",
    "StepContext",
    "StepFailure",
    "StepRef",
    "StepResponse",
    "StepState",
    "StepStatus",
    "StepTimeoutError",
    "StepworkError",
    "TransactionInfo",
    "TransactionState",
    "TransactionTimeoutError",
    "When",
    "Workflow",
    "WorkflowEngine",
    "WorkflowExecution",
    "WorkflowResponse",
    "WorkflowResult",
    "WorkflowRunner",
    "attach_event_bus",
    "bind_subscribers",
    "create_hook",
    "create_step",
    "create_workflow",
    "emit_event_step",
    "get_workflow",
    "instrument",
    "parallelize",
    "step",
    "subscriber",
    "transform",
    "use_query_graph_step",
    "when",
    "workflow",
]

__version__ = "0.1.0"
