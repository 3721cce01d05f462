"""stepwork: durable, transactional workflows for Python.

Layers (each importing only those below it)::

    orchestration  the pure state machine: plans, step states, transitions, compensation order
    storage        one store protocol; SQLite and PostgreSQL stores; payload serialization
    engine         runs executions on asyncio (one run loop, in memory or checkpointed); the
                   WorkflowEngine stores, resumes and lists them; what steps receive and return
    sdk            what users write: steps, workflows, references, transform, when, parallelize, hooks

Top-level modules (``errors``, ``container``) sit below all of them.

Everything public is importable from ``stepwork``; other modules are internal.
"""

from stepwork.container import Container, Modules
from stepwork.engine.context import StepContext
from stepwork.engine.engine import WorkflowEngine
from stepwork.engine.records import WorkflowExecution
from stepwork.engine.results import Acknowledgement, TransactionInfo, WorkflowResult
from stepwork.engine.step_response import StepResponse
from stepwork.errors import PermanentStepFailure, StepTimeoutError, StepworkError, TransactionTimeoutError
from stepwork.orchestration.states import StepState, StepStatus, TransactionState
from stepwork.orchestration.transaction import StepFailure
from stepwork.sdk.builder import StepRef
from stepwork.sdk.composition import When, parallelize, transform, when
from stepwork.sdk.hooks import Hook, Hooks, create_hook
from stepwork.sdk.references import Ref
from stepwork.sdk.steps import Step, create_step, step
from stepwork.sdk.workflows import Workflow, WorkflowResponse, WorkflowRunner, create_workflow, get_workflow, workflow

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
