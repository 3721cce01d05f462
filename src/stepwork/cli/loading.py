"""Loading what the user names: an application module, a ``MODULE:WORKFLOW`` target, a JSON input."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from stepwork.cli.errors import CliError
from stepwork.engine.registry import get_workflow, registered_workflows
from stepwork.errors import StepworkError

__all__ = ["import_module", "load_workflow", "parse_input"]


def import_module(name: str) -> Any:
    """Import ``name`` (with the current directory on ``sys.path``) so that its workflows register.
    ``MODULE:ATTRIBUTE`` (how ``--app`` names an ``App``) imports ``MODULE``."""
    name = name.partition(":")[0]
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    if not name or name.startswith(".") or any(not part.isidentifier() for part in name.split(".")):
        raise CliError.usage(f"{name!r} is not a module path (write it as in an import, e.g. myapp.workflows)")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise CliError.usage(f"module {name!r} not found (looked in the current directory and the "
                                 "installed packages)") from None
        raise CliError(f"importing module {name!r} failed: {exc}") from None
    except StepworkError as exc:
        raise CliError(f"importing module {name!r} failed: {exc.message}", 1) from None
    except Exception as exc:
        raise CliError(f"importing module {name!r} failed: {type(exc).__name__}: {exc}") from None


def load_workflow(target: str, app: str | None = None) -> Any:
    """The workflow ``MODULE:WORKFLOW`` names: ``WORKFLOW`` is an attribute of the module, else a
    registered workflow name. A bare ``WORKFLOW`` is looked up by name after importing ``app``."""
    if app:
        import_module(app)
    module_name, sep, attr = target.rpartition(":")
    if not sep:
        attr = target
    elif not module_name or not attr:
        raise CliError.usage(f"{target!r} is not MODULE:WORKFLOW (e.g. myapp.workflows:create_brand)")
    module = import_module(module_name) if module_name else None
    found = getattr(module, attr, None) if attr.isidentifier() else None
    if found is not None and hasattr(found, "compiled") and hasattr(found, "name"):
        return found
    try:
        return get_workflow(attr)
    except StepworkError:
        if found is not None:
            raise CliError.usage(f"{target!r} is a {type(found).__name__}, not a workflow") from None
        known = ", ".join(sorted(registered_workflows())) or "none"
        where = f"module {module_name!r}" if module_name else "the registry"
        raise CliError.usage(f"no workflow {attr!r} in {where} (neither an attribute nor a registered "
                             f"workflow name; registered: {known})") from None


def parse_input(text: str | None) -> Any:
    """The ``--input`` value: JSON text, or ``@path`` to a JSON file; ``None`` stays ``None``."""
    if text is None:
        return None
    source = "--input"
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise CliError.usage(f"cannot read the input file {str(path)!r}: {reason}") from None
        source = str(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError.usage(f"{source} is not valid JSON: {exc}") from None
