"""``worklens-collector serve``: the gRPC ingest server and the HTTP API in
one asyncio loop over one store.

Keepalive: the numbers both ends agree on are in ``worklens.common.wire``.

Shutdown: SIGTERM/SIGINT stop accepting, give open calls ``SHUTDOWN_GRACE_S``
to finish, let the store writer commit everything queued, close, exit 0.

Several collectors (``--db postgresql://...``): nothing here is per process
except open streams. Revocations reach every collector's streams through the
credential watcher (ingest.revocations); scheduled maintenance runs on one
collector at a time (retention.maintenance_turn); a database that is down makes
ingest answer UNAVAILABLE and ``/healthz`` 503 until it is back, and the
collector keeps running (docs/scaling-out.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from typing import Any

import grpc
from worklens.collector.access.tls import (
    TlsFiles,
    check_plaintext,
    grpc_credentials,
    split_host_port,
    tls_files,
)
from worklens.collector.config import CollectorConfig
from worklens.collector.ingest.guards import FailedEnrollments, return_big_frees_to_the_system
from worklens.collector.ingest.service import AgentService
from worklens.collector.ingest.validate import Limits
from worklens.collector.rollup import open_with_rollups
from worklens.collector.store import Store
from worklens.collector.store.records import tune_garbage_collector
from worklens.common import wire
from worklens.common.cli import UserError

log = logging.getLogger(__name__)

STREAM_WINDOW_BYTES = 8 * 1024        # per-stream receive window (see server_options)
SHUTDOWN_GRACE_S = 10.0
OPEN_FILES_CEILING = 1 << 20          # Linux's default nr_open, when the hard limit is infinite


def server_options(cfg: CollectorConfig) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", int(cfg.grpc.max_message_mb * 1024 * 1024)),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ("grpc.keepalive_time_ms", wire.KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", wire.KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms",
         wire.MIN_CLIENT_PING_INTERVAL_MS),
        ("grpc.http2.min_ping_interval_without_data_ms", wire.MIN_CLIENT_PING_INTERVAL_MS),
        ("grpc.http2.max_ping_strikes", wire.MAX_PING_STRIKES),
        ("grpc.http2.max_pings_without_data", 0),
        # Agents send a small batch every flush interval, ~700 a day. Bandwidth-delay
        # probing would ping after batches (34 bytes with the answer), and with
        # grpc's default windows every batch also cost a connection WINDOW_UPDATE
        # next to the stream one (13 bytes each): the connection window's target
        # follows the stream window, and one of 8 KiB is only topped up now and then.
        # Large batches still flow: grpc opens a stream's window as far as a pending
        # message needs (benchmarks/wire_bytes.py and ingest.py measure both).
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
        # Without this, Linux grpc sets SO_REUSEPORT and a second collector could
        # silently share the port instead of failing.
        ("grpc.so_reuseport", 0),
    ]


def _check_listeners(cfg: CollectorConfig) -> tuple[TlsFiles | None, TlsFiles | None]:
    grpc_tls, http_tls = tls_files("grpc", cfg.grpc), tls_files("http", cfg.http)
    if grpc_tls is None:
        check_plaintext("grpc", cfg.grpc.listen, cfg.grpc.insecure)
    if http_tls is None:
        check_plaintext("http", cfg.http.listen, cfg.http.insecure)
    return grpc_tls, http_tls


def _load_create_app() -> Any:
    """The HTTP app factory, or None while worklens.collector.http does not exist yet."""
    try:
        from worklens.collector.http import create_app
    except ModuleNotFoundError as exc:
        if exc.name != "worklens.collector.http":
            raise
        log.warning("worklens.collector.http is not installed: serving gRPC only")
        return None
    return create_app


def _bind(listen: str) -> socket.socket:
    host, port = split_host_port(listen)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise UserError(f"HTTP: cannot listen on {listen}: {exc.strerror or exc}") from None
    sock.set_inheritable(False)
    return sock


class Collector:
    """A running collector: store + gRPC server + (when available) HTTP server."""

    def __init__(self, cfg: CollectorConfig, url: str, *, http: bool = True) -> None:
        self.cfg = cfg
        self.url = url
        self.with_http = http
        self.store: Store | None = None
        self.grpc_address = ""
        self.http_url = ""
        self._grpc: grpc.aio.Server | None = None
        self._service: AgentService | None = None
        self._http: Any = None
        self._http_task: asyncio.Task | None = None
        self._retention: Any = None
        # set when the store's writer died: serve() exits non-zero (see on_writer_failure)
        self.failed = asyncio.Event()

    async def start(self) -> None:
        grpc_tls, http_tls = _check_listeners(self.cfg)
        self.store = open_with_rollups(self.url, serving=True)
        loop = asyncio.get_running_loop()

        def writer_failed(_exc: BaseException) -> None:
            with contextlib.suppress(RuntimeError):   # the loop is already closed
                loop.call_soon_threadsafe(self.failed.set)
        self.store.on_writer_failure(writer_failed)
        try:
            from worklens.collector.retention import schedule_retention  # [retention] keep, hourly
            self._retention = schedule_retention(asyncio.get_running_loop(), self.store,
                                                 self.cfg.retention.keep)
            await self._start_grpc(grpc_tls)
            if self.with_http:
                await self._start_http(http_tls)
        except BaseException:
            await self.stop(grace=0)
            raise
        log.info("collector ready (store %s)", self.url)

    async def _start_grpc(self, tls: TlsFiles | None) -> None:
        server = grpc.aio.server(options=server_options(self.cfg))
        self._service = AgentService(
            self.store, Limits.from_config(self.cfg),
            FailedEnrollments(burst=self.cfg.grpc.enroll_failures_burst))
        server.add_generic_rpc_handlers((self._service.handler(),))
        self._service.start()
        listen = self.cfg.grpc.listen
        try:
            if tls is None:
                port = server.add_insecure_port(listen)
            else:
                port = server.add_secure_port(listen, grpc_credentials(tls))
        except RuntimeError as exc:
            raise UserError(f"gRPC: cannot listen on {listen} ({exc}); is another "
                            "program using that port?") from None
        await server.start()
        self._grpc = server
        host, _ = split_host_port(listen)
        self.grpc_address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        log.info("gRPC listening on %s%s", self.grpc_address,
                 "" if tls is None else (" (TLS, client certificates required)"
                                         if tls.client_ca else " (TLS)"))

    async def _start_http(self, tls: TlsFiles | None) -> None:
        create_app = _load_create_app()
        if create_app is None:
            return
        import uvicorn

        sock = _bind(self.cfg.http.listen)
        config = uvicorn.Config(create_app(self.store, self.cfg), log_config=None,
                                access_log=False, lifespan="on",
                                ssl_certfile=str(tls.cert) if tls else None,
                                ssl_keyfile=str(tls.key) if tls else None)
        server = uvicorn.Server(config)
        # We own the signals (and may run outside the main thread): uvicorn must not.
        server.capture_signals = contextlib.nullcontext
        self._http = server
        self._http_task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if self._http_task.done():
                self._http_task.result()  # re-raise why it stopped
                raise UserError("the HTTP server stopped during startup")
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        shown = host if ":" not in host else f"[{host}]"
        self.http_url = f"{'https' if tls else 'http'}://{shown}:{port}/"
        log.info("HTTP listening on %s", self.http_url)

    async def stop(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        """Stop accepting, let open calls finish (up to ``grace``), commit, close."""
        if self._grpc is not None:
            self._service.drain()
            await self._grpc.stop(grace)
            self._grpc = None
        if self._service is not None:
            await self._service.stop()
        if self._http is not None:
            self._http.should_exit = True
            with contextlib.suppress(Exception, SystemExit):
                await asyncio.wait_for(self._http_task, timeout=grace + 5)
            self._http = None
        if self._retention is not None:   # waits for a running purge, before the close
            await asyncio.to_thread(self._retention.shutdown)
            self._retention = None
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None


def raise_open_files_limit() -> None:
    """Each agent holds a connection, i.e. an open file: lift the soft limit (often
    1024 in a login shell, which would refuse the 1,000th agent) to the hard limit.
    The packaged unit sets LimitNOFILE itself; this covers every other way to run."""
    try:
        import resource
    except ImportError:  # not a POSIX system: nothing to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = OPEN_FILES_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("open files limit stays at %d (%s): at most about that many agents "
                        "can be connected", soft, exc)
            return
        log.info("open files limit raised from %d to %d (one per connected agent)", soft,
                 target)


async def serve(cfg: CollectorConfig, url: str) -> int:
    raise_open_files_limit()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before "ready": a signal then is handled
        loop.add_signal_handler(sig, stopping.set)
    collector = Collector(cfg, url)
    await collector.start()
    tune_garbage_collector()
    return_big_frees_to_the_system()
    waits = [asyncio.create_task(stopping.wait()), asyncio.create_task(collector.failed.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    if collector.failed.is_set():
        log.critical("the store writer stopped (see above); exiting so that the service "
                     "manager restarts the collector; agents keep their unacknowledged "
                     "batches and send them again")
    else:
        log.info("shutting down: finishing in-flight batches")
    await collector.stop()
    log.info("stopped")
    return 1 if collector.failed.is_set() else 0
