"""Workflows: ``create_workflow``, ``@workflow``, ``WorkflowResponse`` and running (docs/workflows.md)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from stepwork.container import Container, Modules
from stepwork.engine import registry
from stepwork.engine.compiled import CompiledWorkflow
from stepwork.engine.in_memory import execute
from stepwork.engine.registry import register_workflow
from stepwork.engine.results import WorkflowResult
from stepwork.engine.step_response import UNSET, StepResponse
from stepwork.errors import StepworkError
from stepwork.orchestration.definition import WorkflowOptions, parse_step_options, parse_workflow_options
from stepwork.sdk.builder import StepEntry, StepRef, WorkflowBuilder, composing, require_builder
from stepwork.sdk.hooks import Hook, Hooks
from stepwork.sdk.references import INPUT, Ref

if TYPE_CHECKING:
    from stepwork.engine.context import StepContext

__all__ = ["Workflow", "WorkflowResponse", "WorkflowRunner", "create_workflow", "get_workflow", "workflow"]

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741
O_co = TypeVar("O_co", covariant=True)
_INVALID = StepworkError.Types.INVALID_DATA
_NONE: Any = None

EventHandlers = Mapping[str, Callable[[dict[str, Any]], Any]]


class WorkflowResponse(Generic[O_co]):
    """What a composer returns: the ``result`` (references and literals) and the ``hooks`` it exposes."""

    __slots__ = ("hooks", "result")

    @overload
    def __init__(self, result: Ref[O_co], hooks: Sequence[Hook[Any]] = ()) -> None: ...
    @overload
    def __init__(self, result: O_co = ..., hooks: Sequence[Hook[Any]] = ()) -> None: ...
    def __init__(self, result: Any = _NONE, hooks: Sequence[Hook[Any]] = ()) -> None:
        self.result = result
        self.hooks = tuple(hooks)


class Workflow(Generic[I, O]):
    """A composed workflow. Run it with ``await wf.run(input)``, ``await wf(container).run(...)`` or
    ``wf.run_sync(...)``; use it in another workflow with ``wf.run_as_step(input)``."""

    __slots__ = ("_compiled", "hooks", "options")

    def __init__(self, options: WorkflowOptions, compiled: CompiledWorkflow, hooks: Hooks) -> None:
        self.options = options
        self._compiled = compiled
        self.hooks = hooks

    @property
    def name(self) -> str:
        """The workflow's name (its id)."""
        return self.options.name

    def get_name(self) -> str:
        """The workflow's name (Medusa's ``getName()``)."""
        return self.options.name

    @property
    def definition(self) -> dict[str, Any]:
        """The JSON-serializable step graph stored with every execution."""
        return self._compiled.plan.definition

    @property
    def step_names(self) -> list[str]:
        """The names of the workflow's steps, in definition order."""
        return [s.name for s in self._compiled.plan.steps]

    @property
    def compiled(self) -> CompiledWorkflow:
        """The plan and handlers the engine runs (internal, for engines)."""
        return self._compiled

    def __call__(self, container: Container | None = None) -> WorkflowRunner[I, O]:
        return WorkflowRunner(self, container)

    async def run(self, input: I | None = None, *, container: Container | None = None,
                  context: Mapping[str, Any] | None = None, transaction_id: str | None = None,
                  throw_on_error: bool = True, result_from: str | None = None,
                  events: EventHandlers | None = None) -> WorkflowResult[O]:
        """Run the workflow and return its :class:`WorkflowResult`.

        Goes through the engine registered in ``container`` as ``Modules.WORKFLOW_ENGINE``, else
        through an implicit in-memory engine. With ``throw_on_error`` a run that ends ``failed`` or
        ``reverted`` raises its first error (the original exception object).
        """
        if container is not None:
            engine = container.resolve_optional(Modules.WORKFLOW_ENGINE)
            if engine is not None:
                return cast(WorkflowResult[O], await engine.run(
                    self, input, transaction_id=transaction_id, context=context,
                    throw_on_error=throw_on_error, events=events, result_from=result_from,
                    container=container))
        return cast(WorkflowResult[O], await execute(
            self._compiled, input, container=container, context=context, transaction_id=transaction_id,
            throw_on_error=throw_on_error, result_from=result_from, events=events))

    def run_sync(self, input: I | None = None, *, container: Container | None = None,
                 context: Mapping[str, Any] | None = None, transaction_id: str | None = None,
                 throw_on_error: bool = True, result_from: str | None = None,
                 events: EventHandlers | None = None) -> WorkflowResult[O]:
        """:meth:`run` for code without an event loop (it starts one with ``asyncio.run``)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise StepworkError(StepworkError.Types.NOT_ALLOWED,
                                "run_sync() was called inside a running event loop; use `await wf.run(...)`.")
        return asyncio.run(self.run(input, container=container, context=context,
                                    transaction_id=transaction_id, throw_on_error=throw_on_error,
                                    result_from=result_from, events=events))

    def run_as_step(self, input: I | Ref[I] | None = None) -> StepRef[O]:
        """Inside another composer: add step ``"{name}-as-step"`` that runs this workflow.

        The child runs with transaction id ``"{step name}-{parent transaction id}"`` and the parent's
        event group; compensating the step reverts the child. Rename with ``.config(name=...)``.
        """
        builder = require_builder(f'Workflow "{self.name}".run_as_step(...)')
        name = f"{self.name}-as-step"
        compiled = self._compiled

        async def invoke(value: Any, ctx: StepContext) -> Any:
            run = ctx._run  # the engine's run (its nested-run backend: in memory, or stored)
            return await run.nested.run_child(run, compiled, value, ctx)  # type: ignore[attr-defined]

        async def compensate(value: Any, ctx: StepContext) -> Any:
            return await ctx._run.revert_child(value, ctx)  # type: ignore[attr-defined]

        # A child that waits (async steps) makes this step wait for it too (Medusa's async nested step).
        options = {"async": True} if compiled.plan.has_async_steps else {}
        entry = StepEntry(name, parse_step_options(name, options), invoke, True, compensate, True,
                          None if input is UNSET else input, builder.conditions, kind="nested")
        return builder.add_step(entry)

    def __repr__(self) -> str:
        return f"Workflow({self.name!r})"


class WorkflowRunner(Generic[I, O]):
    """``wf(container)``: the workflow bound to a container (Medusa's form)."""

    __slots__ = ("_container", "_workflow")

    def __init__(self, workflow: Workflow[I, O], container: Container | None) -> None:
        self._workflow = workflow
        self._container = container

    async def run(self, input: I | None = None, *, context: Mapping[str, Any] | None = None,
                  transaction_id: str | None = None, throw_on_error: bool = True,
                  result_from: str | None = None, events: EventHandlers | None = None) -> WorkflowResult[O]:
        """Run with the bound container; see :meth:`Workflow.run`."""
        return await self._workflow.run(input, container=self._container, context=context,
                                        transaction_id=transaction_id, throw_on_error=throw_on_error,
                                        result_from=result_from, events=events)

    def run_sync(self, input: I | None = None, *, context: Mapping[str, Any] | None = None,
                 transaction_id: str | None = None, throw_on_error: bool = True,
                 result_from: str | None = None, events: EventHandlers | None = None) -> WorkflowResult[O]:
        """Run with the bound container, without an event loop; see :meth:`Workflow.run_sync`."""
        return self._workflow.run_sync(input, container=self._container, context=context,
                                       transaction_id=transaction_id, throw_on_error=throw_on_error,
                                       result_from=result_from, events=events)


def _build(name_or_config: str | Mapping[str, Any], composer: Callable[..., Any]) -> Workflow[Any, Any]:
    options = parse_workflow_options(name_or_config)
    if not callable(composer):
        raise StepworkError(_INVALID, f'The composer of workflow "{options.name}" must be a function, '
                                      f"got {composer!r}.")
    if inspect.iscoroutinefunction(composer):
        raise StepworkError(_INVALID, f'The composer of workflow "{options.name}" must be a plain function '
                                      "(not async def): it runs once, at definition time, to build the graph.")
    builder = WorkflowBuilder(options.name)
    try:
        n_params = len(inspect.signature(composer).parameters)
    except (TypeError, ValueError):
        n_params = 1
    with composing(builder):
        returned = composer(Ref(INPUT)) if n_params else composer()
    if inspect.isawaitable(returned):
        raise StepworkError(_INVALID, f'The composer of workflow "{options.name}" returned an awaitable; '
                                      "it must be a plain function.")
    if isinstance(returned, WorkflowResponse):
        result = returned.result
    elif isinstance(returned, StepResponse):
        raise StepworkError(_INVALID, f'The composer of workflow "{options.name}" returned a StepResponse; '
                                      "return WorkflowResponse(result) or a reference.")
    else:
        result = returned
    compiled = builder.finalize(options, result)
    wf: Workflow[Any, Any] = Workflow(options, compiled, Hooks(options.name, builder.hook_registry))
    register_workflow(wf)
    return wf


@overload
def create_workflow(name_or_config: str | Mapping[str, Any],
                    composer: Callable[[Ref[I]], WorkflowResponse[O]]) -> Workflow[I, O]: ...
@overload
def create_workflow(name_or_config: str | Mapping[str, Any],
                    composer: Callable[[Ref[I]], Ref[O]]) -> Workflow[I, O]: ...
@overload
def create_workflow(name_or_config: str | Mapping[str, Any],
                    composer: Callable[[Ref[I]], None]) -> Workflow[I, None]: ...
@overload
def create_workflow(name_or_config: str | Mapping[str, Any],
                    composer: Callable[[], WorkflowResponse[O] | Ref[O] | None]) -> Workflow[None, O]: ...
def create_workflow(name_or_config: str | Mapping[str, Any], composer: Callable[..., Any]) -> Workflow[Any, Any]:
    """Compose a workflow: run ``composer(input)`` once, now, to build its static step graph.

    ``name_or_config`` is the name or a mapping with ``name`` and workflow options (``store``,
    ``retention_time``, ``idempotent``, ``timeout``, ``schedule``, ``version``, ``max_concurrency``).
    The workflow is registered by name and version.
    """
    return _build(name_or_config, composer)


class _WorkflowDecorator:
    __slots__ = ("_config",)

    def __init__(self, config: str | Mapping[str, Any]) -> None:
        self._config = config

    @overload
    def __call__(self, composer: Callable[[Ref[I]], WorkflowResponse[O]]) -> Workflow[I, O]: ...
    @overload
    def __call__(self, composer: Callable[[Ref[I]], Ref[O]]) -> Workflow[I, O]: ...
    @overload
    def __call__(self, composer: Callable[[Ref[I]], None]) -> Workflow[I, None]: ...
    @overload
    def __call__(self, composer: Callable[[], WorkflowResponse[O] | Ref[O] | None]) -> Workflow[None, O]: ...
    def __call__(self, composer: Callable[..., Any]) -> Workflow[Any, Any]:
        return _build(self._config, composer)


def workflow(name_or_config: str | Mapping[str, Any]) -> _WorkflowDecorator:
    """Decorator form of :func:`create_workflow`: ``@workflow("name")`` on the composer."""
    if callable(name_or_config):
        raise StepworkError(_INVALID, 'Write @workflow("name"), not a bare @workflow.')
    return _WorkflowDecorator(name_or_config)


def get_workflow(name: str, version: str | None = None) -> Workflow[Any, Any]:
    """The workflow registered as ``name`` (the version defined last, or ``version``);
    ``StepworkError`` (``not_found``) otherwise."""
    return cast(Workflow[Any, Any], registry.get_workflow(name, version))
