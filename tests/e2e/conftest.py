"""Fixtures for end-to-end delivery tests: a real `worklens-collector serve`
process (tests/collector_harness.py; kill -9 and restart on the same ports),
agents enrolled through the real `worklens-agent enroll`, and agent processes
(the real `worklens-agent run`, or tests/e2e/agent_driver.py feeding the real
delivery pipeline with accountable spans)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from collector_harness import CollectorProcess
from e2e_support import agent_command, clean_env

HERE = Path(__file__).parent
TESTS = HERE.parent


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


@pytest.fixture
def agents(tmp_path: Path) -> Iterator:
    """``agents.enroll(collector, name)`` -> (data_dir, agent_id);
    ``agents.driver(data_dir, *args, env=...)`` / ``agents.run(data_dir, env=...)`` start
    processes that are all killed at teardown."""
    started: list[AgentProcess] = []

    class Agents:
        @staticmethod
        def enroll(collector: CollectorProcess, name: str = "agent", *extra: str,
                   address: str | None = None) -> tuple[Path, str]:
            """Enroll through ``address`` (default: the collector's own)."""
            data = tmp_path / name
            done = subprocess.run(agent_command(
                "enroll", "--collector", address or collector.grpc_address, "--secret",
                collector.create_token("enroll"), "--data-dir", str(data), *extra),
                env=clean_env(), capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return data, json.loads((data / "credential.json").read_text())["agent_id"]

        @staticmethod
        def driver(data: Path, *args: str, env: dict[str, str] | None = None) -> AgentProcess:
            argv = [sys.executable, str(HERE / "agent_driver.py"), "--data-dir", str(data),
                    *args]
            proc = AgentProcess(argv, clean_env(**(env or {}))).start()
            started.append(proc)
            return proc

        @staticmethod
        def run(data: Path, env: dict[str, str] | None = None) -> AgentProcess:
            argv = agent_command("run", "--data-dir", str(data))
            proc = AgentProcess(argv, clean_env(**(env or {}))).start()
            started.append(proc)
            return proc

    yield Agents()
    for proc in started:
        proc.kill()
