"""The shipper: moves sealed batches from the spool to the collector over one
long-lived ``Upload`` stream and deletes each batch only when its ack arrives.

It owns delivery policy the way OpenTelemetry's exporterhelper does: the
generated stub knows nothing of retries, and nothing else in the agent knows
about gRPC status codes. Several batches are in flight at once (up to
``max_in_flight``); after any failure the unacknowledged ones are sent again, in
order, on a new stream — the collector recognises a repeated (agent, sequence)
and acks it as a duplicate, so nothing is stored twice.

Compression is a transport concern decided here, per stream: when the
collector's Hello says it accepts packed batches, each batch goes out packed
(worklens.common.packing: process samples as snapshots, times and memory as differences
from what the stream said before, then one DEFLATE context per stream carried
over from batch to batch) and gRPC's per-message gzip is off for
the stream; otherwise batches go out plain with the channel's gzip. The spool
always keeps the plain batch, so a resend on a new stream packs it afresh.

Retry policy (how the stream's final status is handled; the OTLP specification's
table, adapted to a spool that keeps data rather than giving up):

=====================  =========  ===============================================
gRPC status            Retried?   What the shipper does
=====================  =========  ===============================================
UNAVAILABLE            yes        back off, reconnect, resend unacked batches
DEADLINE_EXCEEDED      yes        same (also raised by the shipper itself when an
                                  ack takes longer than ``ack_timeout``)
ABORTED                yes        same
CANCELLED              yes        same (unless the agent itself is stopping)
DATA_LOSS              yes        same
OUT_OF_RANGE           yes        same
RESOURCE_EXHAUSTED     only with  wait the ``retry-after-ms`` given in trailing
                       retry-     metadata, then resend. Without it the batch can
                       after-ms   never fit: it is dead-lettered like
                                  INVALID_ARGUMENT.
INVALID_ARGUMENT       never      the batch named by trailing metadata
                                  ``worklens-rejected-sequence`` (else the oldest
                                  in flight) goes to the spool's dead-letter table:
                                  kept, counted by ``status``, never blocking the
                                  batches after it, which are sent at once.
UNAUTHENTICATED,       never      stop sending and log "re-enroll"; batches stay
PERMISSION_DENIED                 in the spool; sending resumes by itself when the
                                  credential file changes (``enroll`` was run).
any other code         yes        back off and retry, logged as unexpected: a
(UNKNOWN, INTERNAL..)             collector fault must not cost data.
=====================  =========  ===============================================

Backoff: exponential with jitter — 5 s initial, x1.5 per failure, capped at
5 minutes, each delay randomised by +/-50 %, reset by the first ack. There is no
cap on total retry time: the spool's limits (``spool_max_mb``,
``spool_max_age``) decide what is dropped, not the shipper.

Several collector addresses: UNAVAILABLE and DEADLINE_EXCEEDED move to the next
address at once, backing off only after a full round of failures, and the
shipper returns to the preferred address when it answers again (the policy is
in agent/failover.py).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
from worklens.agent import failover
from worklens.agent.channel import each_address, explain, open_channel
from worklens.agent.credential import Connection, Credential
from worklens.agent.spool import Spool, now_ms
from worklens.common import wire
from worklens.common.cli import UserError
from worklens.common.packing import PACKING, Packer
from worklens.v1 import agent_pb2, agent_pb2_grpc

log = logging.getLogger(__name__)

RETRYABLE = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DATA_LOSS, grpc.StatusCode.OUT_OF_RANGE,
})
AUTH_FAILURES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
HELLO_TIMEOUT_S = 15.0


@dataclass
class Backoff:
    """Exponential backoff with jitter. ``initial`` is injectable so tests run fast."""

    initial: float = 5.0
    multiplier: float = 1.5
    maximum: float = 300.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random)
    _current: float = field(default=0.0, init=False)

    def next(self) -> float:
        base = self._current or self.initial
        self._current = min(base * self.multiplier, self.maximum)
        return min(base, self.maximum) * self.rng.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        self._current = 0.0


# Returns where and as whom to connect; may enroll on the way (and raise RpcError).
IdentityProvider = Callable[[], tuple[Connection, Credential]]


class AuthStopped(Exception):
    """Sending stopped until the agent is enrolled again."""


class EnrollmentFailed(Exception):
    """The identity provider tried to enroll and the collector said no (or was
    not there): handled by the same retry table as any other call."""

    def __init__(self, error: grpc.RpcError, conn: Connection):
        super().__init__(str(error))
        self.error = error
        self.conn = conn


class Shipper:
    def __init__(self, spool: Spool, identity: IdentityProvider, host: agent_pb2.HostInfo,
                 *, backoff: Backoff | None = None, max_in_flight: int = 8,
                 ack_timeout: float = 60.0,
                 credential_stamp: Callable[[], float] = lambda: 0.0,
                 failback_after: float = failover.FAILBACK_AFTER_S,
                 on_address: Callable[[str], None] | None = None):
        self.spool = spool
        self._identity = identity
        self._host = host
        self.backoff = backoff or Backoff()
        self.max_in_flight = max_in_flight
        self.ack_timeout = ack_timeout
        self._credential_stamp = credential_stamp
        self._stopping = threading.Event()
        self._wakeup = threading.Condition()
        self._window: _Window | None = None
        self._used_stamp = 0.0   # credential file version the current attempt uses
        # the failure this run last warned about: repeats of it go to DEBUG. Not the
        # spool's last_error, which outlives the run (for `status`): a restarted agent
        # must say once why it cannot deliver, not stay silent.
        self._warned: str | None = None
        self._thread: threading.Thread | None = None
        self.failback_after = failback_after
        self._on_address = on_address or (lambda address: None)   # connected to it
        self._rotation = failover.Rotation([""])
        self._said: dict[str, str] = {}   # address -> the problem last logged for it
        # told to the collector in each stream's first batch (its live view's offline rule)
        self.flush_interval_ms = 0

    # -- control -----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="worklens-shipper", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New batches were sealed."""
        window = self._window
        if window is not None:
            window.notify()

    def drain(self, timeout: float) -> bool:
        """Wait until every sealed batch is acknowledged (True) or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.spool.depth().batches == 0:
                return True
            time.sleep(0.05)
        return self.spool.depth().batches == 0

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        with self._wakeup:
            self._wakeup.notify_all()
        window = self._window
        if window is not None:
            window.cancel()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the loop ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                delay = self._attempt()
            except AuthStopped:
                self._wait_for_new_credential()
                continue
            except Exception:   # a bug must not end delivery for good
                log.exception("shipper: unexpected error; retrying")
                delay = self.backoff.next()
            if delay:
                self._sleep(delay)

    def _attempt(self) -> float:
        """One connection: returns how long to wait before the next one."""
        self._used_stamp = self._credential_stamp()
        try:
            configured, cred = self._identity()
            conn = self._pick(configured)
        except UserError as exc:
            return self._failed(str(exc))
        except EnrollmentFailed as exc:   # enroll() already tried every address
            return self._handle(exc.error, exc.conn, None)
        try:
            channel = open_channel(conn, cred.credential)
        except UserError as exc:
            return self._failed(str(exc))
        window = _Window(self.spool, cred.agent_id, self._host, self.max_in_flight,
                         self.ack_timeout, self._stopping)
        window.flush_interval_ms = self.flush_interval_ms
        try:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            window.pack_for(self._hello(stub, cred.agent_id))
            if self.spool.get("auth_error"):   # Hello took this credential: a stop is over
                self.spool.put("auth_error", None)
            self._window = window
            if self._stopping.is_set():
                return 0.0
            self._on_address(conn.address)
            self._watch_earlier(conn, cred, window)
            self._stream(stub, window)
            if self._stopping.is_set():
                return 0.0
            if window.switch_to is not None:
                return self._switch_back(window.switch_to)
            log.info("collector at %s closed the upload stream; reconnecting", conn.address)
            return self.backoff.next()
        except grpc.RpcError as err:
            if window.switch_to is not None and not self._stopping.is_set():
                return self._switch_back(window.switch_to)
            if self._fail_over(err, conn, window):
                return 0.0
            return self._handle(err, conn, window)
        finally:
            self._window = None
            window.cancel()
            channel.close()

    def _hello(self, stub: agent_pb2_grpc.AgentServiceStub,
               agent_id: str) -> agent_pb2.HelloResponse:
        """Each connection: what the collector accepts (packed batches and which
        extensions). Once per agent id: number batches after what it already has."""
        hello = stub.Hello(agent_pb2.HelloRequest(host=self._host), timeout=HELLO_TIMEOUT_S)
        if self.spool.get("aligned_agent", "") != agent_id:
            self.spool.align_sequences(agent_id, hello.last_sequence)
        return hello

    def _stream(self, stub: agent_pb2_grpc.AgentServiceStub, window: _Window) -> None:
        # packed batches are already compressed: gzip on top would only add its header
        call = stub.Upload(window.requests(), compression=(
            grpc.Compression.NoCompression if window.packed else None))
        window.attach(call)
        for ack in call:
            if window.acked(ack.sequence):
                self.backoff.reset()
                self._warned = None
                self._rotation.delivered()
                if self._said:
                    self._said.clear()      # delivering: the next problem is news again
                if self.spool.get("last_error"):
                    self.spool.put("last_error", None)
                    log.info("delivering again: batch %d acknowledged", ack.sequence)

    # -- several addresses (policy in agent/failover.py) ----------------------------

    def _pick(self, configured: Connection) -> Connection:
        """The Connection for this attempt: the rotation's current address."""
        choices = each_address(configured)
        if not choices:
            return configured           # open_channel says what to configure
        addresses = [one.address for one in choices]
        if self._rotation.addresses != addresses:   # first attempt, or re-enrolled
            self._rotation = failover.Rotation(addresses)
        return choices[self._rotation.current]

    def _fail_over(self, err: grpc.RpcError, conn: Connection, window: _Window) -> bool:
        """Move to the next address when this one is down. True: try it at once;
        False: the retry table decides (one address, another answer, or every
        address failed in a row, when it backs off)."""
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        if window.timed_out:
            code = grpc.StatusCode.DEADLINE_EXCEEDED
        rotation = self._rotation
        if (len(rotation.addresses) < 2 or code not in failover.FAILOVER_CODES
                or self._stopping.is_set()):
            return False
        if rotation.failed():
            return False
        message = explain(err, conn)
        # once per address and problem: a fleet cycling through dead collectors
        # must not fill the log
        said = self._said.get(conn.address) == message
        self._said[conn.address] = message
        log.log(logging.DEBUG if said else logging.WARNING, "%s; trying the collector at %s",
                message, rotation.address)
        return True

    def _watch_earlier(self, conn: Connection, cred: Credential, window: _Window) -> None:
        """On a fallback: ask the preferred addresses now and then whether they are
        back, on a thread of its own while the stream goes on."""
        earlier = self._rotation.earlier()
        if not earlier:
            return
        threading.Thread(target=self._probe_earlier, args=(conn, cred, earlier, window),
                         name="worklens-failback", daemon=True).start()

    def _probe_earlier(self, conn: Connection, cred: Credential,
                       earlier: list[tuple[int, str]], window: _Window) -> None:
        while not window.done.wait(self.failback_after):
            for index, address in earlier:
                if window.done.is_set():
                    return
                if _answers(dataclasses.replace(conn, address=address), cred, self._host):
                    log.info("the collector at %s answers again: moving back to it", address)
                    window.finish(index)
                    # a collector that never ends the half-closed call must not
                    # hold the shipper: the unacked are resent at the other
                    if not window.ended.wait(self.ack_timeout):
                        window.cancel()
                    return

    def _switch_back(self, index: int) -> float:
        self._rotation.prefer(index)
        return 0.0

    # -- policy ------------------------------------------------------------------

    def _handle(self, err: grpc.RpcError, conn: Connection, window: _Window | None) -> float:
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        if window is not None and window.timed_out:
            code = grpc.StatusCode.DEADLINE_EXCEEDED
        if self._stopping.is_set() and code == grpc.StatusCode.CANCELLED:
            return 0.0
        trailing = _trailing(err)
        if code in AUTH_FAILURES:
            message = explain(err, conn)
            log.error("stopped sending: %s", message)
            self.spool.put("auth_error", message)
            raise AuthStopped(message)
        refused_for_good = code == grpc.StatusCode.RESOURCE_EXHAUSTED \
            and wire.RETRY_AFTER_KEY not in trailing
        if code == grpc.StatusCode.INVALID_ARGUMENT or refused_for_good:
            sequence = _int(trailing.get(wire.REJECTED_SEQUENCE_KEY)) or (
                window.oldest_in_flight() if window else None)
            reason = f"{code.name}: {err.details() if hasattr(err, 'details') else ''}"
            if sequence is not None and self.spool.dead_letter(sequence, reason):
                return 0.0   # the rest flows on at once
            return self._failed(f"collector answered {reason}")
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            delay = max(_int(trailing[wire.RETRY_AFTER_KEY]) or 0, 0) / 1000
            log.warning("collector busy; retrying in %.1fs as it asked", delay)
            return delay
        if code not in RETRYABLE:
            log.warning("unexpected %s from the collector; retrying", code.name)
        return self._failed(explain(err, conn))

    def _failed(self, message: str) -> float:
        delay = self.backoff.next()
        if self._warned != message:
            log.warning("%s; retrying in %.1fs (data is kept in the spool)", message, delay)
            self._warned = message
        else:
            log.debug("%s; retrying in %.1fs", message, delay)
        self.spool.put("last_error", message)
        self.spool.put("last_error_ms", now_ms())
        return delay

    def _wait_for_new_credential(self) -> None:
        while not self._stopping.is_set():
            if self._credential_stamp() != self._used_stamp:
                log.info("credential changed: sending again")
                self.spool.put("auth_error", None)
                self.backoff.reset()
                return
            self._sleep(min(5.0, self.backoff.maximum))

    def _sleep(self, seconds: float) -> None:
        with self._wakeup:
            self._wakeup.wait_for(self._stopping.is_set, timeout=seconds)


class _Window:
    """The batches in flight on one stream: feeds the request iterator, matches
    acks, and notices a collector that stopped answering."""

    def __init__(self, spool: Spool, agent_id: str, host: agent_pb2.HostInfo,
                 max_in_flight: int, ack_timeout: float, stopping: threading.Event):
        self._spool = spool
        self._agent_id = agent_id
        self._host = host
        self._max = max_in_flight
        self._ack_timeout = ack_timeout
        self._stopping = stopping
        self._cond = threading.Condition()
        self._in_flight: dict[int, float] = {}   # sequence -> monotonic send time
        self._sent_upto = 0
        self._closed = False
        self._call: grpc.Call | None = None
        # Host facts rarely change: the first batch of a stream carries them all and
        # the rest only the user (the collector keeps a blank field's last value, and
        # the user names the spans). ~50 bytes less per batch, before compression.
        self._user_only = agent_pb2.HostInfo(user=host.user)
        self.timed_out = False
        self.done = threading.Event()     # the stream is over (or being finished)
        self.ended = threading.Event()    # the stream is over
        self.switch_to: int | None = None  # finishing to move to this address index
        self.packed = False           # set by pack_for before requests() runs
        self.flush_interval_ms = 0    # sent with the host facts in the stream's first batch
        self._packer = Packer()       # this stream's context; a new stream starts afresh

    def pack_for(self, hello: agent_pb2.HelloResponse) -> None:
        """Pack this stream's batches if the collector's Hello accepts it, with the
        extensions it lists (an older collector lists none: plain packing)."""
        self.packed = hello.batch_packing == PACKING
        self._packer = Packer(tuple(hello.packing_extensions))

    def attach(self, call: grpc.Call) -> None:
        with self._cond:
            self._call = call
            closed = self._closed
        if closed:
            call.cancel()

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def cancel(self) -> None:
        self.done.set()
        self.ended.set()
        with self._cond:
            self._closed = True
            call = self._call
            self._cond.notify_all()
        if call is not None:
            call.cancel()

    def finish(self, switch_to: int) -> None:
        """End the stream gracefully to move to another address: send nothing
        new, half-close once every batch in flight is acknowledged."""
        self.done.set()
        with self._cond:
            self.switch_to = switch_to
            self._cond.notify_all()

    def oldest_in_flight(self) -> int | None:
        with self._cond:
            return min(self._in_flight) if self._in_flight else None

    def acked(self, sequence: int) -> bool:
        self._spool.ack(sequence)
        with self._cond:
            known = self._in_flight.pop(sequence, None) is not None
            self._cond.notify_all()
        return known

    def requests(self) -> Iterator[agent_pb2.Batch]:
        """Runs on gRPC's sending thread; blocks while the window is full or the
        spool has nothing new; returning half-closes the stream."""
        while True:
            with self._cond:
                if self._closed or self._stopping.is_set():
                    return
                if self.switch_to is not None and not self._in_flight:
                    return      # finished: the collector ends the call after its acks
                if self._overdue():
                    self.timed_out = True
                    call = self._call
                    if call is not None:
                        call.cancel()
                    return
                room = self._max - len(self._in_flight)
                if room <= 0 or self.switch_to is not None:
                    self._cond.wait(timeout=1.0)
                    continue
            batches = self._spool.pending(after=self._sent_upto, limit=room)
            if not batches:
                with self._cond:
                    self._cond.wait(timeout=1.0)
                continue
            for pending in batches:
                batch = pending.batch
                batch.agent_id = self._agent_id
                first = self._sent_upto == 0
                batch.host.CopyFrom(self._host if first else self._user_only)
                if first:
                    batch.flush_interval_ms = self.flush_interval_ms
                # the backlog besides this batch: 0 (nothing on the wire) when all is well
                batch.spool_batches, batch.spool_bytes = self._spool.backlog(pending.sequence)
                with self._cond:
                    self._in_flight[pending.sequence] = time.monotonic()
                    self._sent_upto = pending.sequence
                yield self._packer.pack(batch) if self.packed else batch

    def _overdue(self) -> bool:
        if not self._in_flight:
            return False
        return time.monotonic() - min(self._in_flight.values()) > self._ack_timeout


def _answers(conn: Connection, cred: Credential, host: agent_pb2.HostInfo) -> bool:
    """Does the collector at ``conn`` answer a Hello now (credential accepted)?"""
    try:
        channel = open_channel(conn, cred.credential)
    except UserError:
        return False
    try:
        agent_pb2_grpc.AgentServiceStub(channel).Hello(
            agent_pb2.HelloRequest(host=host), timeout=failover.PROBE_TIMEOUT_S)
        return True
    except grpc.RpcError:
        return False
    finally:
        channel.close()


def _trailing(err: grpc.RpcError) -> dict[str, str]:
    try:
        metadata = err.trailing_metadata() or ()
    except Exception:   # not every RpcError carries call details
        return {}
    return {key: value if isinstance(value, str) else value.decode() for key, value in metadata}


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
