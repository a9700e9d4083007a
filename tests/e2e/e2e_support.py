"""Helpers the end-to-end tests import by name (a module of its own, since
``conftest`` is a different module in every test folder)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).parent.parent


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def agent_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "worklens.agent", *args]


@dataclass
class AgentProcess:
    """A child process whose output is collected line by line."""

    argv: list[str]
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    def start(self) -> AgentProcess:
        self.lines = []
        self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def events(self, kind: str) -> list[tuple[int, int, int]]:
        """(n, start_ms, duration_ms) of the driver's ``closed``/``checkpoint`` lines."""
        out = []
        for line in list(self.lines):
            parts = line.split()
            if len(parts) == 4 and parts[0] == kind:
                out.append((int(parts[1]), int(parts[2]), int(parts[3])))
        return out

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def terminate(self, timeout: float = 90) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def wait(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout)
