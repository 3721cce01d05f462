"""The ``stepwork`` command: the typer app assembled from the command modules, and ``main()``.

``main()`` runs it so that every failure is one line on stderr (``error: ...``) with exit code 1
(a failed operation) or 2 (bad usage or input), Ctrl-C exits 130, and no traceback is ever printed
(set ``STEPWORK_TRACEBACK=1`` to see one when debugging stepwork itself).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import typer
from typer.exceptions import Abort, TyperException

from stepwork.cli import demo, executions, graph, keys, maintenance, run, serve, worker, workers
from stepwork.cli.console import error_line, setup_logging
from stepwork.cli.errors import EXIT_INTERRUPTED, EXIT_USAGE, describe, exit_code_of

__all__ = ["app", "main", "run_cli"]

app = typer.Typer(
    name="stepwork",
    help="Durable, transactional workflows: run them, look at their stored executions, serve the admin API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("run")(run.run)
app.add_typer(executions.app, name="executions")
app.command("graph")(graph.graph)
app.command("cleanup")(maintenance.cleanup)
app.command("migrate")(maintenance.migrate)
app.command("serve")(serve.serve)
app.command("worker")(worker.worker)
app.command("workers")(workers.workers)
app.add_typer(keys.app, name="keys")
app.command("demo")(demo.demo)


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(argv) if argv is not None else None, prog_name="stepwork",
                              standalone_mode=False)
    except TyperException as exc:  # what the argument parser refuses (typer's own click)
        code = int(getattr(exc, "exit_code", EXIT_USAGE))
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help, asked for by giving nothing
            sys.stdout.write(exc.format_message() + "\n")
            return code
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        error_line(exc.format_message() + where)
        return code
    except (Abort, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get("STEPWORK_TRACEBACK"):
            raise
        error_line(describe(exc))
        return exit_code_of(exc)
    return result if isinstance(result, int) else 0


def main() -> None:
    """The console script ``stepwork``: stepwork's log records go to stderr, one line each."""
    setup_logging(logging.WARNING)
    sys.exit(run_cli())
