"""The ``stepwork`` command line (typer + rich): run workflows, read stored executions, draw graphs,
serve the admin API, run a worker, manage API keys, populate a demo database.

One module per command group; ``main.py`` assembles them. Nothing outside this package imports it.
"""
