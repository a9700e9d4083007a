"""Real collectors for tests: in-process (a background event loop in this
process, with direct access to its store) and as a `worklens-collector serve`
subprocess (for kill -9, restart, CLI and signal tests). Both listen on free
ports and expose the same helpers. Import from any test:
``from collector_harness import CollectorProcess, make_batch`` (tests/ is on
sys.path); the fixtures in tests/collector/conftest.py wrap these.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from worklens.collector.config import CollectorConfig
from worklens.collector.server import Collector
from worklens.collector.store import blocks
from worklens.common import settings as wl_config
from worklens.v1 import agent_pb2, agent_pb2_grpc

START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class AgentCredentials:
    agent_id: str
    credential: str
    install_id: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.credential}"),)


def now_ms() -> int:
    return int(time.time() * 1000)


def make_batch(agent_id: str, sequence: int, *, windows: int = 3, activity: int = 3,
               processes: int = 2, system: int = 1, user: str = "alice",
               start_ms: int | None = None, title: str = "README.md - Visual Studio Code",
               dropped_events: int = 0) -> agent_pb2.Batch:
    """A valid batch of realistic records, starting a few minutes ago."""
    start = (now_ms() - 600_000) if start_ms is None else start_ms
    step = min(10_000, 500_000 // max(windows, activity, 1))  # all of it in the past
    batch = agent_pb2.Batch(
        agent_id=agent_id, sequence=sequence, created_ms=now_ms(), dropped_events=dropped_events,
        host=agent_pb2.HostInfo(hostname="ws-17", os="linux", os_version="6.1",
                                user=user, agent_version="0.1.0"))
    for i in range(windows):
        batch.windows.add(start_ms=start + i * step, duration_ms=step, app="code",
                          title=title, pid=4242, exe="/usr/bin/code")
    for i in range(activity):
        batch.activity.add(start_ms=start + i * step, duration_ms=step,
                           state=agent_pb2.ACTIVITY_STATE_ACTIVE, key_presses=40 + i, clicks=3,
                           mouse_moves=120, scrolls=2)
    for i in range(processes):
        batch.processes.add(time_ms=start + 60_000, pid=1000 + i, name=f"proc{i}", user=user,
                            cpu_percent=12.5, rss_bytes=200 << 20, cpu_seconds=7.5,
                            interval_ms=60_000)
    for _ in range(system):
        batch.system.add(time_ms=start + 60_000, cpu_percent=31.0, mem_total_bytes=16 << 30,
                         mem_used_bytes=9 << 30, process_count=312, cpu_count=8)
    return batch


def collector_config(**sections: dict[str, Any]) -> CollectorConfig:
    """A collector config from defaults + ``sections`` only (ignores WORKLENS_* env)."""
    overrides = {"grpc": {"listen": "127.0.0.1:0"}, "http": {"listen": "127.0.0.1:0"}}
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return wl_config.load(CollectorConfig, None, env={}, overrides=overrides)


class _Client:
    """Helpers shared by both kinds of collector; needs grpc_address and db_path."""

    grpc_address: str
    db_path: Path
    db_url: str
    channel_credentials: grpc.ChannelCredentials | None = None

    def channel(self, options: Iterable[tuple[str, Any]] = ()) -> grpc.Channel:
        """A new sync channel to this collector (close it, or use it as a context manager)."""
        options = [("grpc.max_send_message_length", 64 << 20), *options]
        if self.channel_credentials is not None:
            return grpc.secure_channel(self.grpc_address, self.channel_credentials,
                                       options=options)
        return grpc.insecure_channel(self.grpc_address, options=options)

    def stub(self, channel: grpc.Channel) -> agent_pb2_grpc.AgentServiceStub:
        return agent_pb2_grpc.AgentServiceStub(channel)

    def enroll_agent(self, secret: str | None = None, install_id: str | None = None,
                     hostname: str = "ws-17") -> AgentCredentials:
        secret = secret or self.create_token("enroll")
        install_id = install_id or uuid.uuid4().hex
        with self.channel() as channel:
            reply = self.stub(channel).Enroll(agent_pb2.EnrollRequest(
                secret=secret, install_id=install_id,
                host=agent_pb2.HostInfo(hostname=hostname, os="linux", user="alice")),
                timeout=30)
        return AgentCredentials(reply.agent_id, reply.credential, install_id)

    def upload(self, agent: AgentCredentials, batches: Iterable[agent_pb2.Batch],
               timeout: float = 60) -> list[agent_pb2.Ack]:
        """Send ``batches`` on one Upload stream; return the acks (raises grpc.RpcError)."""
        with self.channel() as channel:
            return list(self.stub(channel).Upload(iter(list(batches)), metadata=agent.metadata,
                                                  timeout=timeout))

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Read the database directly (read-only), as an operator would; SQLite-spelled
        SQL (``?`` placeholders) on either engine."""
        return query_store(self.db_url, sql, params)

    def process_samples(self, agent_id: str | None = None) -> list[tuple]:
        """Stored process samples (their blocks decoded), in time order, as rows
        ``blocks.SAMPLE_COLUMNS`` without the agent key."""
        where, params = "", ()
        if agent_id is not None:
            where, params = "WHERE agent = (SELECT id FROM agents WHERE agent_id = ?)", (agent_id,)
        out = [s[1:] for agent, data in self.query(f"SELECT agent, data FROM process_blocks "
                                                   f"{where}", params)
               for s in blocks.unpack(agent, data)]
        return sorted(out, key=lambda s: s[0])

    def count(self, table: str, agent_id: str | None = None) -> int:
        if table == "process_samples":
            return len(self.process_samples(agent_id))
        if agent_id is None:
            return self.query(f"SELECT count(*) FROM {table}")[0][0]
        column = "agent" if table != "agents" else "id"
        return self.query(f"SELECT count(*) FROM {table} WHERE {column} = "
                          "(SELECT id FROM agents WHERE agent_id = ?)", (agent_id,))[0][0]

    def create_token(self, role: str = "enroll", name: str = "") -> str:
        raise NotImplementedError


class InProcessCollector(_Client):
    """A worklens.collector.server.Collector on its own event loop thread in this process."""

    def __init__(self, data_dir: Path, cfg: CollectorConfig | None = None, *,
                 http: bool = False, db_url: str | None = None) -> None:
        self.data_dir = data_dir
        self.cfg = cfg or collector_config()
        self.db_path = data_dir / "worklens.db"
        self.db_url = db_url or self.cfg.store.url or f"sqlite:///{self.db_path}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="collector-loop",
                                        daemon=True)
        self._thread.start()
        self.collector = Collector(self.cfg, self.db_url, http=http)
        try:
            self.run(self.collector.start())
        except BaseException:
            self._shutdown_loop()
            raise
        self.grpc_address = self.collector.grpc_address
        self.http_url = self.collector.http_url
        self.store = self.collector.store

    def run(self, coro: Any, timeout: float = START_TIMEOUT_S) -> Any:
        """Run a coroutine on the collector's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def create_token(self, role: str = "enroll", name: str = "",
                     expires_s: float | None = None) -> str:
        from worklens.collector.access.tokens import create_token
        return create_token(self.store, role, name, expires_s)[1]

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self.run(self.collector.stop(grace=1))
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


@dataclass
class CollectorProcess(_Client):
    """`worklens-collector serve` as a child process on free ports.

    ``start()`` waits for "collector ready"; ``kill()`` is SIGKILL; ``terminate()``
    is SIGTERM and returns the exit code; ``restart()`` starts again on the SAME
    ports (agents keep their configured address). ``db_url`` (e.g. a
    ``postgresql://`` URL several processes share) is passed as ``--db`` to serve
    and to the CLI; without it, the SQLite file in ``data_dir``."""

    data_dir: Path
    extra_args: list[str] = field(default_factory=list)
    config_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    db_url: str = ""
    grpc_address: str = ""
    http_url: str = ""
    lines: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self._db_args = ["--db", self.db_url] if self.db_url else []
        self.db_url = self.db_url or f"sqlite:///{self.db_path}"

    @property
    def db_path(self) -> Path:  # type: ignore[override]
        return self.data_dir / "worklens.db"

    def cli(self, *args: str, check: bool = False, timeout: float = 60
            ) -> subprocess.CompletedProcess:
        """Run `worklens-collector ARGS` with this collector's --data-dir/--db/--config."""
        store_args = ["--data-dir", str(self.data_dir), *self._db_args]
        if self.config_path:
            store_args += ["--config", str(self.config_path)]
        return subprocess.run(collector_command(*args, *store_args), env=self._env(),
                              capture_output=True, text=True, timeout=timeout, check=check)

    def create_token(self, role: str = "enroll", name: str = "") -> str:
        done = self.cli("token", "create", "--role", role, "--name", name, check=True)
        return done.stdout.strip().splitlines()[0]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLENS_")}
        env.update(self.env)
        return env

    def start(self, grpc_listen: str | None = None, http_listen: str | None = None) -> None:
        grpc_listen = grpc_listen or "127.0.0.1:0"
        http_listen = http_listen or "127.0.0.1:0"
        args = ["serve", "--data-dir", str(self.data_dir), "--grpc-listen", grpc_listen,
                "--http-listen", http_listen, *self._db_args, *self.extra_args]
        if self.config_path:
            args += ["--config", str(self.config_path)]
        self.lines = []
        self.proc = subprocess.Popen(collector_command(*args), env=self._env(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(self.proc, ready), daemon=True).start()
        if not ready.wait(START_TIMEOUT_S) or self.proc.poll() is not None:
            self.kill()
            raise RuntimeError("collector did not start:\n" + "".join(self.lines[-30:]))
        for line in self.lines:
            if "gRPC listening on " in line:
                self.grpc_address = line.split("gRPC listening on ")[1].split()[0]
            if "HTTP listening on " in line:
                self.http_url = line.split("HTTP listening on ")[1].split()[0].rstrip("/")

    def _pump(self, proc: subprocess.Popen, ready: threading.Event) -> None:
        for line in proc.stdout:
            self.lines.append(line)
            if "collector ready" in line:
                ready.set()
        ready.set()  # exited: let start() notice

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        """SIGKILL, as an OOM killer or power loss would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM; wait for the clean shutdown; return the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def restart(self, kill: bool = True) -> None:
        """Stop (SIGKILL by default) and start again on the same ports."""
        grpc_port = self.grpc_address.rsplit(":", 1)[1]
        http_listen = None
        if self.http_url:
            http_listen = "127.0.0.1:" + self.http_url.rsplit(":", 1)[1]
        if kill:
            self.kill()
        else:
            self.terminate()
        self.start(f"127.0.0.1:{grpc_port}", http_listen)


def query_store(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of one SQLite-spelled query on the store at ``url`` (either engine), on a
    connection of its own, as an operator's client would read it."""
    if url.startswith("postgres"):
        import psycopg
        from worklens.collector.store.pgsql import PgConnection, adapt

        with psycopg.connect(url, autocommit=True, connect_timeout=30) as raw:
            adapt(raw)
            cur = PgConnection(raw).execute(sql, params)
            return cur.fetchall() if cur.description else []
    from worklens.collector.store import sqlite_path

    conn = sqlite3.connect(f"file:{sqlite_path(url)}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def collector_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "worklens.collector", *args]
