"""The application layer: ``App``, ``Module`` and ``use_query_graph_step`` (docs/application.md).

An ``App`` puts modules (a service, SQLAlchemy models, Alembic migrations), the container, the
query and a ``WorkflowEngine`` together on one database; ``App.from_config`` reads
``[tool.stepwork]``. Importing this package does not import SQLAlchemy or Alembic.
"""

from stepwork.app.application import App
from stepwork.app.module import Module
from stepwork.app.steps import use_query_graph_step

__all__ = ["App", "Module", "use_query_graph_step"]
