"""Shared by the HTTP API, client and dashboard tests: a REAL collector
(``worklens-collector serve`` subprocess from tests/collector_harness.py) with
helpers to make tokens, call the HTTP API and feed data through real agents
over gRPC."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from collector_harness import AgentCredentials, CollectorProcess
from worklens.collector.access import tokens
from worklens.collector.rollup import open_with_rollups
from worklens.v1 import agent_pb2

ACTIVE, IDLE, LOCKED = (agent_pb2.ACTIVITY_STATE_ACTIVE, agent_pb2.ACTIVITY_STATE_IDLE,
                        agent_pb2.ACTIVITY_STATE_LOCKED)


@dataclass
class HttpCollector(CollectorProcess):
    """A serving collector plus HTTP helpers (``url`` has no trailing slash)."""

    sequences: dict[str, itertools.count] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.http_url

    def token(self, role: str, name: str = "", expires_s: float | None = None) -> str:
        """A new token secret, made through the store as `token create` does
        (in-process: quicker than the CLI and lets tests pick short expiries)."""
        store = open_with_rollups(self.db_url)
        try:
            _info, secret = tokens.create_token(store, role, name or f"test-{role}", expires_s)
        finally:
            store.close()
        return secret

    def get(self, path: str, token: str | None = None, **kw) -> requests.Response:
        return self.request("GET", path, token, **kw)

    def request(self, method: str, path: str, token: str | None = None,
                **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        kw.setdefault("timeout", 60)
        return requests.request(method, self.url + path, headers=headers, **kw)

    def send(self, agent: AgentCredentials, user: str, windows=(), activity=(), processes=(),
             hostname: str = "ws-17") -> list[agent_pb2.Ack]:
        """One batch for ``agent`` (next sequence) through the real Upload stream."""
        seq = next(self.sequences.setdefault(agent.agent_id, itertools.count(1)))
        batch = agent_pb2.Batch(
            agent_id=agent.agent_id, sequence=seq, created_ms=int(time.time() * 1000),
            host=agent_pb2.HostInfo(hostname=hostname, os="linux", os_version="6.1", user=user,
                                    agent_version="0.1.0"),
            windows=list(windows), activity=list(activity), processes=list(processes))
        return self.upload(agent, [batch])


def start_collector(data_dir: Path, db_url: str = "") -> HttpCollector:
    col = HttpCollector(data_dir, db_url=db_url)
    col.start()
    if not col.http_url:
        col.kill()
        raise RuntimeError("collector started without HTTP:\n" + col.output)
    return col


def window(start_ms: int, seconds: float, app: str, title: str = "") -> agent_pb2.WindowSpan:
    return agent_pb2.WindowSpan(start_ms=start_ms, duration_ms=int(seconds * 1000), app=app,
                                title=title or app, pid=100, exe=f"/usr/bin/{app}")


def activity(start_ms: int, seconds: float, state: int = ACTIVE, keys: int = 0,
             clicks: int = 0) -> agent_pb2.ActivitySpan:
    return agent_pb2.ActivitySpan(start_ms=start_ms, duration_ms=int(seconds * 1000),
                                  state=state, key_presses=keys, clicks=clicks)
