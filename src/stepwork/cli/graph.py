"""``stepwork graph MODULE:WORKFLOW``: draw a workflow's step graph."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from stepwork.cli.common import AppOption
from stepwork.cli.config import resolve
from stepwork.cli.drawing import FORMATS, build_graph, render
from stepwork.cli.errors import CliError
from stepwork.cli.loading import load_workflow

__all__ = ["graph"]


def graph(
    target: Annotated[str, typer.Argument(metavar="MODULE:WORKFLOW", show_default=False,
                                          help="The module and the workflow (its attribute name, or its registered "
                                               "name).")],
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="mermaid|dot|text",
                                     help="mermaid (paste into a Markdown page), dot (Graphviz) or text.")] = "text",
    app: AppOption = None,
) -> None:
    """Draw a workflow's step graph (mermaid, dot or text).

    Shows the stages in order, parallel steps, when-branches, hooks, nested workflows (with their own
    steps) and async steps.

    Examples:

        stepwork graph stepwork.cli.demo_workflows:brand_created
        stepwork graph myapp.workflows:create_brand --format mermaid > graph.mmd
        stepwork graph myapp.workflows:create-brand --format dot | dot -Tsvg > graph.svg
    """
    if fmt not in FORMATS:
        raise CliError.usage(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    settings = resolve(app=app)
    workflow = load_workflow(target, settings.app)
    sys.stdout.write(render(build_graph(workflow.compiled), fmt) + "\n")
