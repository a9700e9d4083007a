"""Entry script of the bundled ``worklens-agent`` (same as the console script)."""

from worklens.agent.cli import main

if __name__ == "__main__":
    main()
