"""References: placeholders for values known only at run time, and how they are resolved.

Inside a composer, ``input``, step calls, ``transform`` and ``when`` return references. A reference
has a *source* (the workflow input, a step's output, or a lazy value such as a transform) and a
*path* of keys. Templates (any mix of literals, dicts, lists, tuples and references) are compiled
once, at definition time, into resolver functions; at run time a resolver reads the run's values
and returns a deep copy, so a step can never mutate what another step sees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from stepwork.engine.values import ATOMS as _ATOMS
from stepwork.engine.values import LazyNode, ValueSource, clone
from stepwork.errors import StepworkError

if TYPE_CHECKING:
    from stepwork.sdk.builder import StepEntry

__all__ = ["INPUT", "Compiled", "Ref", "compile_value"]

T_co = TypeVar("T_co", covariant=True)

class _InputSource:
    __slots__ = ()

    def __repr__(self) -> str:
        return "input"


INPUT = _InputSource()


def _no_operators(op: str) -> StepworkError:
    return StepworkError(
        StepworkError.Types.INVALID_DATA,
        f"Cannot use {op} on a workflow reference inside a workflow definition: the composer runs once, "
        "at definition time, and references only have values at run time. "
        "Use transform(values, fn) to compute with them, or when(values, condition).then(...) to branch.")


class Ref(Generic[T_co]):
    """A reference to a value known at run time (docs/workflows.md, references).

    ``ref.key``, ``ref["key"]`` and ``ref[0]`` make derived references; a path through ``None`` or a
    missing key resolves to ``None``. Python operators, ``if``/``bool``, iteration and comparisons
    raise ``StepworkError``: use ``transform`` and ``when``.
    """

    __slots__ = ("_sw_path", "_sw_source")
    _sw_source: Any
    _sw_path: tuple[Any, ...]

    def __init__(self, source: Any, path: tuple[Any, ...] = ()) -> None:
        object.__setattr__(self, "_sw_source", source)
        object.__setattr__(self, "_sw_path", path)

    def __getattr__(self, name: str) -> Ref[Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return Ref(self._sw_source, (*self._sw_path, name))

    def __getitem__(self, key: Any) -> Ref[Any]:
        return Ref(self._sw_source, (*self._sw_path, key))

    def config(self, name: str | None = None, **options: Any) -> Ref[T_co]:
        """Rename or configure the step this reference stands for (only on a step's own reference)."""
        raise StepworkError(StepworkError.Types.INVALID_DATA,
                            ".config(...) configures a step and is only available on the reference a step "
                            "call returns. To read an output key named 'config', write ref[\"config\"].")

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise _no_operators("attribute assignment")

    def __repr__(self) -> str:
        path = "".join(f"[{p!r}]" for p in self._sw_path)
        return f"Ref({self._sw_source!r}{path})"

    def __bool__(self) -> bool:
        raise _no_operators("`if`/`bool()`")

    def __iter__(self) -> NoReturn:
        raise _no_operators("iteration")

    def __len__(self) -> int:
        raise _no_operators("len()")

    def __contains__(self, item: object) -> bool:
        raise _no_operators("`in`")

    def __eq__(self, other: object) -> bool:
        raise _no_operators("`==`")

    def __ne__(self, other: object) -> bool:
        raise _no_operators("`!=`")

    __hash__ = object.__hash__

    def __lt__(self, other: object) -> bool:
        raise _no_operators("`<`")

    def __le__(self, other: object) -> bool:
        raise _no_operators("`<=`")

    def __gt__(self, other: object) -> bool:
        raise _no_operators("`>`")

    def __ge__(self, other: object) -> bool:
        raise _no_operators("`>=`")

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise _no_operators("a call")

    def __index__(self) -> int:
        raise _no_operators("an index")

    def __int__(self) -> int:
        raise _no_operators("int()")

    def __float__(self) -> float:
        raise _no_operators("float()")

    def __format__(self, spec: str) -> str:
        raise _no_operators("string formatting")

    def __deepcopy__(self, memo: dict[int, Any]) -> Ref[T_co]:
        return self


def _binary(op: str) -> Callable[..., NoReturn]:
    def method(self: Ref[Any], *args: Any) -> NoReturn:
        raise _no_operators(f"`{op}`")
    return method


for _name, _op in (("add", "+"), ("sub", "-"), ("mul", "*"), ("truediv", "/"), ("floordiv", "//"),
                   ("mod", "%"), ("pow", "**"), ("and", "&"), ("or", "|"), ("xor", "^"),
                   ("lshift", "<<"), ("rshift", ">>"), ("matmul", "@")):
    setattr(Ref, f"__{_name}__", _binary(_op))
    setattr(Ref, f"__r{_name}__", _binary(_op))
for _name, _op in (("neg", "unary -"), ("pos", "unary +"), ("invert", "~"), ("abs", "abs()")):
    setattr(Ref, f"__{_name}__", _binary(_op))


def _walk(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        if value is None:
            return None
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, (list, tuple)) and isinstance(key, int):
            value = value[key] if -len(value) <= key < len(value) else None
        elif isinstance(key, str):
            value = getattr(value, key, None)
        else:
            try:
                value = value[key]
            except (LookupError, TypeError):
                return None
    return value


def _ref_reader(ref: Ref[Any]) -> Callable[[ValueSource], Any]:
    source = ref._sw_source
    path = ref._sw_path
    atoms = _ATOMS
    if source is INPUT:
        if not path:
            def read_input(s: ValueSource) -> Any:
                v = s.payload
                return v if type(v) in atoms else clone(v)
            return read_input

        def read_input_path(s: ValueSource) -> Any:
            return clone(_walk(s.payload, path))
        return read_input_path
    if isinstance(source, LazyNode):
        key = source.key
        if not path:
            def read_lazy(s: ValueSource) -> Any:
                v = s.memo.get(key)
                return v if type(v) in atoms else clone(v)
            return read_lazy

        def read_lazy_path(s: ValueSource) -> Any:
            return clone(_walk(s.memo.get(key), path))
        return read_lazy_path
    entry: StepEntry = source
    index = entry.index
    if not path:
        def read_step(s: ValueSource) -> Any:
            v = s.outputs[index]
            return v if type(v) in atoms else clone(v)
        return read_step

    def read_step_path(s: ValueSource) -> Any:
        return clone(_walk(s.outputs[index], path))
    return read_step_path


class Compiled:
    """A compiled template: ``read(source)`` plus the lazy nodes and steps it depends on."""

    __slots__ = ("lazy", "read", "steps")

    def __init__(self, read: Callable[[ValueSource], Any], lazy: list[LazyNode],
                 steps: list[StepEntry]) -> None:
        self.read = read
        self.lazy = lazy
        self.steps = steps


def _add_lazy(node: LazyNode, out: list[LazyNode]) -> None:
    if any(n is node for n in out):
        return
    for dep in node.deps:
        _add_lazy(dep, out)
    out.append(node)


def compile_value(template: Any) -> Compiled:
    """Compile a template of literals and references into a resolver."""
    lazy: list[LazyNode] = []
    steps: list[StepEntry] = []
    read = _compile(template, lazy, steps)
    return Compiled(read, lazy, steps)


def _is_ref_method(value: Any) -> bool:
    return callable(value) and isinstance(getattr(value, "__self__", None), Ref)


def _has_refs(value: Any) -> bool:
    if isinstance(value, Ref) or _is_ref_method(value):
        return True
    t = type(value)
    if t is dict:
        return any(_has_refs(v) for v in value.values())
    if t is list or t is tuple:
        return any(_has_refs(v) for v in value)
    return False


def _compile(value: Any, lazy: list[LazyNode], steps: list[StepEntry]) -> Callable[[ValueSource], Any]:
    if _is_ref_method(value):
        raise StepworkError(StepworkError.Types.INVALID_DATA,
                            f"A workflow reference's .{getattr(value, '__name__', 'config')} method was passed as a "
                            "value. .config(...) configures a step; to read an output key named 'config', write "
                            "ref[\"config\"].")
    if isinstance(value, Ref):
        source = value._sw_source
        if isinstance(source, LazyNode):
            _add_lazy(source, lazy)
        elif source is not INPUT and not any(s is source for s in steps):
            steps.append(source)
        return _ref_reader(value)
    if not _has_refs(value):
        if type(value) in _ATOMS:
            return lambda s: value
        return lambda s: clone(value)
    t = type(value)
    if t is dict:
        items = [(k, _compile(v, lazy, steps)) for k, v in value.items()]
        return lambda s: {k: r(s) for k, r in items}
    parts = [_compile(v, lazy, steps) for v in value]
    if t is list:
        return lambda s: [r(s) for r in parts]
    return lambda s: tuple([r(s) for r in parts])
