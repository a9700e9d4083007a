"""The command-line convention both programs follow: exit 0 on success, 2 on
usage errors (argparse), 1 on other failures, and for an *expected* failure one
line on stderr that says what to do — never a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from worklens.common.settings import ConfigError


class UserError(Exception):
    """An expected failure: the message is shown to a person as it is."""


def run_main(prog: str, main: Callable[[list[str] | None], int | None],
             argv: list[str] | None = None) -> int:
    """Run ``main`` and turn expected errors into one line and an exit code."""
    try:
        return int(main(argv) or 0)
    except (UserError, ConfigError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `worklens-collector export ... | head`
        return 0


def setup_logging(level: str = "INFO") -> None:
    """Plain, timestamped log lines on stderr (journald and a terminal alike)."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
