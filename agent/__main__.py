"""``python -m worklens.agent``: the same as the ``worklens-agent`` command."""

from worklens.agent.cli import main

main()
