"""The delivery side of the agent behind the ``Sink`` seam: closed records go
into the durable spool at once, a flusher seals them into batches every
``flush_interval``, and the shipper streams the batches to the collector in a
background thread.

``open_delivery`` is what ``worklens-agent run`` calls. It refuses to start
when the agent can never deliver (not enrolled and no enrollment secret, a
plain-text address that is not local) — one line saying what to do — but it
never waits for the collector: an agent started while the collector is down,
or before it has enrolled, records to the spool and catches up later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
from worklens.agent import credential, runstate
from worklens.agent.channel import ENROLL_HINT, check, connection
from worklens.agent.credential import Connection, Credential
from worklens.agent.enroll import enroll
from worklens.agent.hostinfo import host_info
from worklens.agent.shipper import Backoff, EnrollmentFailed, Shipper
from worklens.agent.sink import Record
from worklens.agent.spool import Spool
from worklens.common.cli import UserError

log = logging.getLogger(__name__)

LOCK_FILE = "agent.lock"
CLOSE_DRAIN_S = 5.0   # on a clean stop, give the collector this long to ack the rest


class SpoolSink:
    """The ``agent.sink.Sink`` the runner writes to."""

    def __init__(self, spool: Spool, shipper: Shipper, flush_interval: float, lock):
        self.spool = spool
        self.shipper = shipper
        self.flush_interval = flush_interval
        self._lock = lock
        self._closed = threading.Event()
        self._last_seal = time.monotonic()
        self._flusher = threading.Thread(target=self._flush_loop, name="worklens-flusher",
                                         daemon=True)

    def start(self) -> None:
        self.shipper.start()
        self._flusher.start()

    def write(self, records: Sequence[Record]) -> None:
        self.spool.add(records)

    def checkpoint(self, open_records: Sequence[Record],
                   closed: Sequence[Record] = (), heartbeat: bool = False) -> None:
        """The sampler's flush: cut parts and checkpoint in one transaction, then
        seal at once so that they leave now (the flusher waits a full interval
        after this seal before it seals on its own)."""
        self.spool.checkpoint(open_records, closed)
        if (closed or heartbeat) and not self._closed.is_set():
            self.flush(heartbeat=heartbeat)

    def flush(self, heartbeat: bool = False) -> list[int]:
        """Seal what is spooled now (an empty batch if ``heartbeat`` and there is
        nothing) and tell the shipper."""
        self._last_seal = time.monotonic()
        sealed = self.spool.seal(heartbeat=heartbeat)
        if sealed:
            self.shipper.wake()
        return sealed

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._flusher.join(5.0)
        self.flush()
        if not self.shipper.drain(CLOSE_DRAIN_S):
            log.info("stopping with %d batch(es) unsent; they stay in the spool",
                     self.spool.depth().batches)
        self.shipper.stop()
        self.spool.close()
        _release(self._lock)

    def _flush_loop(self) -> None:
        # seals what the sampler's flush did not (process samples outside the schedule,
        # a sampler that stopped cutting): a full interval after the last seal
        while not self._closed.wait(max(0.0, self._last_seal + self.flush_interval
                                        - time.monotonic())):
            if time.monotonic() < self._last_seal + self.flush_interval:
                continue
            try:
                self.flush()
            except Exception:   # keep flushing; the next seal picks the records up
                log.exception("sealing the spool failed")


def open_delivery(cfg, data_dir: Path, *, backoff: Backoff | None = None,
                  failback_after: float | None = None) -> SpoolSink:
    """A started ``Sink`` backed by the spool in ``data_dir``, shipping to the
    collector in the background (enrolling first if it has to)."""
    credential.ensure_private_dir(data_dir)
    saved = credential.load(data_dir)
    secret = cfg.collector.enroll_secret.strip()
    if saved is None and not secret:
        raise UserError(f"not enrolled: run {ENROLL_HINT}")
    conn = connection(cfg.collector, saved.collector if saved else None)
    check(conn)   # a bad address or TLS file fails now, in one line
    lock = _acquire(data_dir / LOCK_FILE)
    try:
        spool = Spool.open(data_dir, cfg.delivery.spool_max_mb, cfg.delivery.spool_max_age)
    except BaseException:
        _release(lock)
        raise
    shipper = Shipper(spool, _identity_provider(cfg, data_dir, secret), host_info(),
                      backoff=backoff, credential_stamp=lambda: credential.stamp(data_dir),
                      on_address=lambda address: runstate.record_collector(data_dir, address),
                      **({"failback_after": failback_after} if failback_after else {}))
    shipper.flush_interval_ms = int(cfg.delivery.flush_interval * 1000)
    sink = SpoolSink(spool, shipper, cfg.delivery.flush_interval, lock)
    sink.start()
    log.info("delivering to %s every %gs (spool %s)", conn.address,
             cfg.delivery.flush_interval, spool.path)
    return sink


def _identity_provider(cfg, data_dir: Path, secret: str):
    def identity() -> tuple[Connection, Credential]:
        cred = credential.load(data_dir)
        if cred is None:
            conn = connection(cfg.collector)
            try:
                cred = enroll(conn, secret, data_dir)
            except grpc.RpcError as err:
                raise EnrollmentFailed(err, getattr(err, "conn", conn)) from None
            log.info("enrolled as %s with the collector at %s", cred.agent_id, conn.address)
        return connection(cfg.collector, cred.collector), cred
    return identity


def _acquire(path: Path):
    """One agent per data dir: two would ship the same spool twice."""
    try:
        import fcntl
    except ImportError:   # Windows: the service manager runs one instance
        return None
    fh = path.open("a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise UserError(f"another worklens-agent is already running with data dir "
                        f"{path.parent}") from None
    return fh


def _release(lock) -> None:
    if lock is not None:
        lock.close()
