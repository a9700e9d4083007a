"""Helpers for the agent delivery tests: records with realistic, current
timestamps (the collector rejects times outside its retention window), a
shipper wired to a spool and an enrolled agent, and polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from worklens.agent.credential import Connection, Credential
from worklens.agent.shipper import Backoff, Shipper
from worklens.agent.spool import Spool
from worklens.v1 import agent_pb2

HOST = agent_pb2.HostInfo(hostname="test-host", os="linux", os_version="6.1", user="alice",
                          agent_version="0.1.0")


def now_ms() -> int:
    return int(time.time() * 1000)


def window(i: int, title: str | None = None, start_ms: int | None = None
           ) -> agent_pb2.WindowSpan:
    start = now_ms() - 3_600_000 + i * 1000 if start_ms is None else start_ms
    return agent_pb2.WindowSpan(start_ms=start, duration_ms=1000, app=f"app{i % 7}",
                                title=f"span {i}" if title is None else title, pid=100 + i,
                                exe=f"/usr/bin/app{i % 7}")


def fast_backoff() -> Backoff:
    return Backoff(initial=0.05, maximum=0.5)


def make_shipper(spool: Spool, address: str, agent_id: str, credential: str, *,
                 stamp: Callable[[], float] = lambda: 0.0, **kwargs) -> Shipper:
    conn = Connection(address=address)
    cred = Credential(agent_id=agent_id, credential=credential, install_id="test")
    kwargs.setdefault("backoff", fast_backoff())
    return Shipper(spool, lambda: (conn, cred), HOST, credential_stamp=stamp, **kwargs)


def spool_with(tmp: Path, batches: list[list[agent_pb2.WindowSpan]]) -> Spool:
    spool = Spool.open(tmp)
    for records in batches:
        spool.add(records)
        spool.seal()
    return spool


def agent_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
    """Run `worklens-agent ARGS` as a person would; WORKLENS_* from the test
    environment are dropped so only ``env`` applies."""
    import os
    import subprocess
    import sys
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")}
    clean.update(env or {})
    return subprocess.run([sys.executable, "-m", "worklens.agent", *args],
                          env=clean, capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
