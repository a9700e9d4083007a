"""``python -m worklens.collector``: the same as the ``worklens-collector`` command."""

from worklens.collector.cli import main

main()
