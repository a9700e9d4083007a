"""Helpers the end-to-end tests import by name (a module of its own, since
``conftest`` is a different module in every test folder)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

TESTS = Path(__file__).parent.parent


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def agent_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "worklens.agent", *args]
