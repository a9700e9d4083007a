"""Fixtures for end-to-end delivery tests: a real `worklens-collector serve`
process (tests/collector_harness.py; kill -9 and restart on the same ports),
agents enrolled through the real `worklens-agent enroll`, and agent processes
(the real `worklens-agent run`, or tests/e2e/agent_driver.py feeding the real
delivery pipeline with accountable spans)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_harness import CollectorProcess
from e2e_support import AgentProcess, agent_command, clean_env

HERE = Path(__file__).parent
TESTS = HERE.parent


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
