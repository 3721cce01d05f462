"""stepwork: durable, transactional workflows for Python.

Layers (each importing only those below it)::

    sdk            what users write: steps, workflows, references, transform, when, parallelize, hooks
    orchestration  the pure state machine: plans, step states, transitions, compensation order
    engine         runs executions on asyncio; the WorkflowEngine stores, resumes and lists them
    storage        one store protocol; SQLite and PostgreSQL stores; payload serialization
    app            the container and module names

Everything public is importable from ``stepwork``; other modules are internal.
"""

from stepwork.app.container import Container, Modules
from stepwork.engine.engine import WorkflowEngine
from stepwork.engine.records import WorkflowExecution
from stepwork.errors import PermanentStepFailure, StepTimeoutError, StepworkError, TransactionTimeoutError
from stepwork.orchestration.states import StepState, StepStatus, TransactionState
from stepwork.orchestration.transaction import StepFailure
from stepwork.sdk.builder import StepRef
from stepwork.sdk.composition import When, parallelize, transform, when
from stepwork.sdk.context import StepContext
from stepwork.sdk.hooks import Hook, Hooks, create_hook
from stepwork.sdk.references import Ref
from stepwork.sdk.registry import get_workflow
from stepwork.sdk.results import Acknowledgement, TransactionInfo, WorkflowResult
from stepwork.sdk.step_response import StepResponse
from stepwork.sdk.steps import Step, create_step, step
from stepwork.sdk.workflows import Workflow, WorkflowResponse, WorkflowRunner, create_workflow, workflow

__all__ = [
    "Acknowledgement",
    "Container",
    "Hook",
    "Hooks",
    "Modules",
    "PermanentStepFailure",
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
    "create_hook",
    "create_step",
    "create_workflow",
    "get_workflow",
    "parallelize",
    "step",
    "transform",
    "when",
    "workflow",
]

__version__ = "0.1.0"
