"""``python -m stepwork.cli``: the same as the ``stepwork`` command."""

from stepwork.cli.main import main

main()
