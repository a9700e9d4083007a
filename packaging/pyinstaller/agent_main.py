"""Entry script of the bundled ``worklens-agent`` (same as the console script)."""

from agent.cli import main

if __name__ == "__main__":
    main()
