"""Shared by the HTTP API, client and dashboard tests: a REAL collector
(``worklens-collector serve`` as a subprocess on free ports), tokens, and a
real agent enrolled and uploading batches over gRPC."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import requests
from worklens.v1 import agent_pb2, agent_pb2_grpc

from collector import tokens
from collector.store import open_store

BIN = Path(sys.executable).parent
COLLECTOR = str(BIN / "worklens-collector")
START_TIMEOUT_S = 60


@dataclass
class Collector:
    """A running ``worklens-collector serve`` and what tests need to talk to it."""

    data_dir: Path
    proc: subprocess.Popen
    url: str = ""             # http://127.0.0.1:PORT (no trailing slash)
    grpc_address: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'worklens.db'}"

    def token(self, role: str, name: str = "", expires_s: float | None = None) -> str:
        """A new token secret, made through the store like `token create` does."""
        store = open_store(self.db_url)
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
        kw.setdefault("timeout", 30)
        return requests.request(method, self.url + path, headers=headers, **kw)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def start_collector(data_dir: Path, extra_env: dict[str, str] | None = None) -> Collector:
    """Start serve on free ports (port 0) and wait for both listening lines."""
    env = {**os.environ, "WORKLENS_DATA_DIR": str(data_dir), **(extra_env or {})}
    proc = subprocess.Popen(
        [COLLECTOR, "serve", "--data-dir", str(data_dir), "--grpc-listen", "127.0.0.1:0",
         "--http-listen", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    col = Collector(data_dir=data_dir, proc=proc)
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:  # keep reading so the pipe never fills and blocks the collector
        assert proc.stderr is not None
        for line in proc.stderr:
            col.log.append(line.rstrip())
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (col.url and col.grpc_address):
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None or time.monotonic() > deadline:
            col.stop()
            raise RuntimeError("collector did not start:\n" + "\n".join(col.log))
        if m := re.search(r"HTTP listening on (\S+?)/?$", line.strip()):
            col.url = m.group(1).rstrip("/")
        if m := re.search(r"gRPC listening on (\S+)", line):
            col.grpc_address = m.group(1)
    return col


# -- a real agent over gRPC ----------------------------------------------------------------

@dataclass
class Agent:
    agent_id: str
    credential: str
    channel: grpc.Channel
    user: str
    hostname: str
    sequence: int = 0

    def host(self) -> agent_pb2.HostInfo:
        return agent_pb2.HostInfo(hostname=self.hostname, os="linux", os_version="6.1",
                                  user=self.user, agent_version="test")

    def upload(self, windows=(), activity=(), processes=()) -> list[agent_pb2.Ack]:
        """One batch through the real Upload stream; returns the acks."""
        self.sequence += 1
        batch = agent_pb2.Batch(agent_id=self.agent_id, sequence=self.sequence,
                                host=self.host(), created_ms=int(time.time() * 1000),
                                windows=list(windows), activity=list(activity),
                                processes=list(processes))
        stub = agent_pb2_grpc.AgentServiceStub(self.channel)
        meta = (("authorization", f"Bearer {self.credential}"),)
        return list(stub.Upload(iter([batch]), metadata=meta, timeout=60))

    def close(self) -> None:
        self.channel.close()


def enroll(col: Collector, user: str = "alice", hostname: str = "ws-1") -> Agent:
    secret = col.token("enroll", "test-enroll")
    channel = grpc.insecure_channel(col.grpc_address)
    host = agent_pb2.HostInfo(hostname=hostname, os="linux", os_version="6.1", user=user,
                              agent_version="test")
    stub = agent_pb2_grpc.AgentServiceStub(channel)
    resp = stub.Enroll(agent_pb2.EnrollRequest(secret=secret, host=host,
                                               install_id=uuid.uuid4().hex), timeout=60)
    return Agent(resp.agent_id, resp.credential, channel, user, hostname)


def window(start_ms: int, seconds: float, app: str, title: str = "") -> agent_pb2.WindowSpan:
    return agent_pb2.WindowSpan(start_ms=start_ms, duration_ms=int(seconds * 1000), app=app,
                                title=title or app, pid=100, exe=f"/usr/bin/{app}")


def activity(start_ms: int, seconds: float, state: int = agent_pb2.ACTIVITY_STATE_ACTIVE,
             keys: int = 0, clicks: int = 0) -> agent_pb2.ActivitySpan:
    return agent_pb2.ActivitySpan(start_ms=start_ms, duration_ms=int(seconds * 1000),
                                  state=state, key_presses=keys, clicks=clicks)
