"""Entry script of the bundled ``worklens-collector`` (same as the console script)."""

from collector.cli import main

if __name__ == "__main__":
    main()
