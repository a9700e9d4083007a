"""The gRPC servicer for agents: authenticate, validate, hand to the store.

Handlers are registered with NO request deserializer: they receive raw bytes
and parse them here, so malformed protobuf is answered with INVALID_ARGUMENT
(grpc would otherwise report a deserializer failure as INTERNAL).

Status codes (the agent's retry table keys on them):

====================  =========================================================
INVALID_ARGUMENT      malformed bytes, a batch breaking a limit (see
                      worklens.collector.ingest.validate), too many events, packed bytes that
                      do not inflate in the stream's context or do not parse.
                      Upload ends with trailing metadata
                      ``worklens-rejected-sequence: <seq>``; nothing of that
                      batch is stored. Do not resend it as is.
UNAUTHENTICATED       missing, unknown, wrong or revoked credential; unknown,
                      revoked or expired enrollment secret. Also ends an open
                      Upload stream whose agent was revoked or re-enrolled
                      meanwhile (see "Revocation" below).
PERMISSION_DENIED     batch.agent_id is not the credential's agent; re-enroll
                      of a revoked agent.
RESOURCE_EXHAUSTED    message over ``[grpc] max_message_mb`` (grpc itself), a
                      packed batch expanding past that size (no retry-after:
                      it never fits), or the store is overloaded: trailing
                      metadata ``retry-after-ms`` says when to retry.
UNAVAILABLE           the batch could not be made durable (disk full, the
                      database down or restarting, shutting down): retry later,
                      nothing of it was stored. Also when the credential cannot
                      be looked up because the database is down.
====================  =========================================================

Upload pipelines: a reader task parses, validates and queues each batch to the
store as it arrives (several in flight per stream share group commits), and
the handler yields acks in order as their commits complete.

Packed batches (``Batch.packed``, worklens.common.packing): each Upload stream has its
own inflate context and difference state, created with the stream and dropped
with it. A packed batch is inflated (capped at the maximum message size),
parsed, its differences turned back into times and memory, its process
snapshots expanded, and from there it is an ordinary batch: the same agent id
check, the same validation, the same store call.

Revocation: a stream is authenticated when it opens; then (a) every open
stream's credential is checked against the database about once a second
(ingest.revocations), which catches revocations and re-enrollments written by
any process (other collectors sharing the database, the ``agents`` CLI, the
HTTP API) and ends the stream even while its agent sends nothing; (b) before
the next batch is accepted when this process revoked or re-enrolled any agent
since (access.enrollment's change counter). A stream whose credential no
longer holds ends with UNAUTHENTICATED; batches accepted before that are
stored and acked.

Credential lookups run on a thread, never on the event loop: with PostgreSQL a
lookup is a round trip, and a database that is down makes it wait for the
pool's timeout, which must not stop every other stream (and the HTTP API).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import grpc
from google.protobuf.message import DecodeError, Message
from worklens.collector import metrics
from worklens.collector.access.enrollment import (
    MAX_INSTALL_ID,
    AgentRevoked,
    EnrollmentRefused,
    ReenrollRefused,
    authenticate,
    credential_changes,
    enroll,
)
from worklens.collector.ingest.guards import (
    MAX_ENROLL_BYTES,
    MAX_HELLO_BYTES,
    PRESCAN_BYTES,
    FailedEnrollments,
    collect_garbage_soon,
    event_count,
    for_log,
    has_control,
    peer_address,
    records_over,
    snapshots_fit,
)
from worklens.collector.ingest.revocations import Held, RevocationWatcher
from worklens.collector.ingest.userchange import note_user_change
from worklens.collector.ingest.validate import InvalidBatch, Limits, check_batch, check_host
from worklens.collector.store import AgentRow, IngestResult, Store, StoreBusy, StoreError
from worklens.collector.store.overlaps import clip_overlaps, rows_overlap
from worklens.collector.store.records import extract
from worklens.common import wire
from worklens.common.packing import (
    EXTENSIONS,
    PACKING,
    Inflater,
    PackedTooLarge,
    PackingError,
    StreamDeltas,
    expand_processes,
    refuse_stream_references,
)
from worklens.v1 import agent_pb2

log = logging.getLogger(__name__)

SERVICE = "worklens.v1.AgentService"
# Batches of one stream parsed and queued ahead of their acks.
MAX_IN_FLIGHT = 32
# ... and at most this many events (records held in memory until their commit): a
# stream of 16 MB batches must not hold 32 of them. One batch is always let through.
MAX_IN_FLIGHT_EVENTS = 100_000
# Upload streams one agent may have open at once (an agent uses one; a few more cover
# a reconnect while the old connection is not yet known to be dead).
MAX_STREAMS_PER_AGENT = 8
STREAMS_RETRY_AFTER_MS = 5_000
REVOKED_ON_STREAM = ("agent credential revoked or replaced while the upload stream was open: "
                     "re-enroll the agent")

_STORED = metrics.BATCHES.labels(result="stored")
_DUPLICATE = metrics.BATCHES.labels(result="duplicate")
_REJECTED = metrics.BATCHES.labels(result="rejected")


@dataclass(frozen=True)
class _Reject:
    code: grpc.StatusCode
    details: str
    reason: str
    sequence: int | None = None
    retry_after_ms: int | None = None
    size: int = 0            # bytes of the refused message (see guards.collect_garbage_soon)

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        out = []
        if self.sequence is not None:
            out.append((wire.REJECTED_SEQUENCE_KEY, str(self.sequence)))
        if self.retry_after_ms is not None:
            out.append((wire.RETRY_AFTER_KEY, str(self.retry_after_ms)))
        return tuple(out)


@dataclass(eq=False)
class _Stream:
    """What one Upload stream keeps: who it is, the credential change count it was
    last confirmed at, its inflate context, and (once set) why it must end."""
    credential: str
    agent: AgentRow
    checked_changes: int
    inflater: Inflater | None = None
    deltas: StreamDeltas | None = None
    user: str = ""          # the user this stream's agent last reported
    in_flight_events: int = 0
    room: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task | None = None
    ended: _Reject | None = None

    @property
    def held(self) -> Held:
        return self.agent.key, self.agent.credential_hash

    def end(self, reject: _Reject) -> None:
        """Stop reading: what is in flight is acked, then the stream ends with ``reject``."""
        if self.ended is None:
            self.ended = reject
            if self.reader is not None:
                self.reader.cancel()


@dataclass(frozen=True)
class _InFlight:
    sequence: int
    future: asyncio.Future
    arrived: float
    events: int


_END = object()


def _parse(cls: type[Message], data: bytes) -> Message:
    message = cls()
    message.ParseFromString(data)
    return message


def _forget(pipeline: asyncio.Queue) -> None:
    """Batches still in flight when a stream ends are stored all the same; retrieve
    their outcomes so asyncio does not log "exception was never retrieved"."""
    while not pipeline.empty():
        item = pipeline.get_nowait()
        if isinstance(item, _InFlight):
            item.future.add_done_callback(lambda f: f.cancelled() or f.exception())


def _credential(context: grpc.aio.ServicerContext) -> str:
    return wire.credential_of(context.invocation_metadata())


async def _outcome(item: _InFlight) -> IngestResult | _Reject:
    """What the store made of a queued batch; a refusal as a _Reject (returned, not
    raised from an ``except`` block: see AgentService.enroll)."""
    try:
        return await item.future
    except StoreError as exc:
        return _store_failure(exc, item.sequence)
    except Exception as exc:  # the store refused this one batch's values
        return _Reject(grpc.StatusCode.INVALID_ARGUMENT, f"batch not storable: {exc}",
                       "invalid", item.sequence)


def _enroll_problem(request: agent_pb2.EnrollRequest) -> str | None:
    """Why an EnrollRequest cannot be used, or None."""
    if not request.install_id or len(request.install_id) > MAX_INSTALL_ID:
        return f"install_id must be 1 to {MAX_INSTALL_ID} characters"
    if has_control(request.install_id):
        return "install_id must not contain control characters"
    try:
        check_host(request.host)
    except InvalidBatch as exc:
        return str(exc)
    return None


_REVOKED = _Reject(grpc.StatusCode.UNAUTHENTICATED, REVOKED_ON_STREAM, "unauthenticated")


def _store_failure(exc: StoreError, sequence: int | None) -> _Reject:
    if isinstance(exc, StoreBusy):
        return _Reject(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), "busy", sequence,
                       exc.retry_after_ms)
    return _Reject(grpc.StatusCode.UNAVAILABLE, str(exc), "unavailable", sequence)


class AgentService:
    """Enroll, Hello and Upload for agents; knows gRPC, not SQL."""

    def __init__(self, store: Store, limits: Limits,
                 failed_enrollments: FailedEnrollments | None = None) -> None:
        self.store = store
        self.limits = limits
        self._failed_enrollments = failed_enrollments or FailedEnrollments()
        self._readers: set[asyncio.Task] = set()
        self._streams: dict[int, int] = {}   # agent key -> open Upload streams
        self._open: set[_Stream] = set()
        self._draining = False
        self._watcher: asyncio.Task | None = None

    def start(self) -> None:
        """Start watching the open streams' credentials (in the running loop)."""
        watcher = RevocationWatcher(self.store, self._held, self._end_revoked)
        self._watcher = asyncio.get_running_loop().create_task(watcher.run())

    async def stop(self) -> None:
        """Stop the credential watcher (the streams are the gRPC server's to end)."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    def _held(self) -> list[Held]:
        return [stream.held for stream in self._open]

    def _end_revoked(self, held: Held) -> None:
        for stream in [s for s in self._open if s.held == held]:
            log.info("agent %s: credential revoked or replaced; ending its upload stream",
                     stream.agent.agent_id)
            stream.end(_REVOKED)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Enroll": grpc.unary_unary_rpc_method_handler(
                self.enroll, response_serializer=agent_pb2.EnrollResponse.SerializeToString),
            "Hello": grpc.unary_unary_rpc_method_handler(
                self.hello, response_serializer=agent_pb2.HelloResponse.SerializeToString),
            "Upload": grpc.stream_stream_rpc_method_handler(
                self.upload, response_serializer=agent_pb2.Ack.SerializeToString),
        })

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    async def _abort(context: grpc.aio.ServicerContext, reject: _Reject) -> None:
        metrics.rejected(reject.reason)
        collect_garbage_soon(reject.size)
        await context.abort(reject.code, reject.details,
                            trailing_metadata=reject.trailing_metadata())

    @staticmethod
    def _parse_small(cls: type[Message], data: bytes, limit: int) -> Message | _Reject:
        """A pre-authentication message, refused before parsing when it is larger than
        any honest one can be (see collector.ingest.guards)."""
        if len(data) > limit:
            return _Reject(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           f"{cls.__name__} of {len(data)} bytes: the limit is {limit}",
                           "too_large")
        try:
            return _parse(cls, data)
        except DecodeError as exc:
            return _Reject(grpc.StatusCode.INVALID_ARGUMENT,
                           f"malformed {cls.__name__} message: {exc}", "malformed")

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> AgentRow:
        credential = _credential(context)
        agent = None
        if credential:
            try:
                agent = await asyncio.to_thread(authenticate, self.store, credential)
            except StoreError as exc:
                agent = _store_failure(exc, None)
        if isinstance(agent, _Reject):
            await self._abort(context, agent)
        if agent is None:
            what = "wrong, unknown or revoked" if credential else "missing"
            await self._abort(context, _Reject(
                grpc.StatusCode.UNAUTHENTICATED,
                f"agent credential {what}: send 'authorization: Bearer <credential>' "
                "(re-enroll the agent if it was revoked)", "unauthenticated"))
        return agent

    # -- Enroll / Hello ------------------------------------------------------------------

    async def enroll(self, data: bytes, context: grpc.aio.ServicerContext
                     ) -> agent_pb2.EnrollResponse:
        # Nothing that holds the request (or the exception of a refusal) may be
        # alive when abort() raises: its traceback keeps this frame, and a frame
        # kept in a reference cycle waits for the cyclic garbage collector, which
        # the tuned thresholds run rarely (collector.store.records).
        peer = peer_address(context.peer() or "")
        outcome = await self._enroll(data, _credential(context), peer)
        size = len(data)
        del data
        if isinstance(outcome, _Reject):
            outcome = replace(outcome, size=size)
            if outcome.reason in ("unauthenticated", "invalid", "malformed", "permission",
                                  "too_large"):
                self._failed_enrollments.failed(peer)
            await self._abort(context, outcome)
        return outcome

    async def _enroll(self, data: bytes, credential: str, peer: str
                      ) -> agent_pb2.EnrollResponse | _Reject:
        wait_ms = self._failed_enrollments.retry_after_ms(peer)
        if wait_ms is not None:
            return _Reject(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           "too many failed enrollments from this address; retry later",
                           "rate_limited", retry_after_ms=wait_ms)
        request = self._parse_small(agent_pb2.EnrollRequest, data, MAX_ENROLL_BYTES)
        if isinstance(request, _Reject):
            return request
        invalid = _enroll_problem(request)
        if invalid:
            return _Reject(grpc.StatusCode.INVALID_ARGUMENT, invalid, "invalid")
        try:
            enrolled = await enroll(self.store, request.secret, request.install_id,
                                    request.host, credential)
        except EnrollmentRefused as exc:
            return _Reject(grpc.StatusCode.UNAUTHENTICATED, str(exc), "unauthenticated")
        except (AgentRevoked, ReenrollRefused) as exc:
            return _Reject(grpc.StatusCode.PERMISSION_DENIED, str(exc), "permission")
        except StoreError as exc:
            return _store_failure(exc, None)
        # the install id is a secret of the agent's machine: never logged
        log.info("%s agent %s (host %s)", "enrolled" if enrolled.new else "re-enrolled",
                 enrolled.agent.agent_id, for_log(request.host.hostname))
        return agent_pb2.EnrollResponse(agent_id=enrolled.agent.agent_id,
                                        credential=enrolled.credential)

    async def hello(self, data: bytes, context: grpc.aio.ServicerContext
                    ) -> agent_pb2.HelloResponse:
        request = self._parse_small(agent_pb2.HelloRequest, data, MAX_HELLO_BYTES)
        if isinstance(request, _Reject):
            request = replace(request, size=len(data))
        del data
        if isinstance(request, _Reject):
            await self._abort(context, request)
        agent = await self._authenticate(context)
        return agent_pb2.HelloResponse(agent_id=agent.agent_id,
                                       server_time_ms=int(time.time() * 1000),
                                       last_sequence=agent.last_sequence,
                                       batch_packing=PACKING,
                                       packing_extensions=EXTENSIONS)

    # -- Upload --------------------------------------------------------------------------

    async def upload(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
                     ) -> AsyncIterator[agent_pb2.Ack]:
        changes = credential_changes()   # before the lookup: a change meanwhile re-checks
        agent = await self._authenticate(context)
        if self._streams.get(agent.key, 0) >= MAX_STREAMS_PER_AGENT:
            await self._abort(context, _Reject(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"agent {agent.agent_id} already has {MAX_STREAMS_PER_AGENT} upload streams "
                "open; retry later", "busy", retry_after_ms=STREAMS_RETRY_AFTER_MS))
        stream = _Stream(_credential(context), agent, changes, user=agent.username)
        self._streams[agent.key] = self._streams.get(agent.key, 0) + 1
        self._open.add(stream)
        acks = self._acks(requests, context, stream)
        try:
            async for ack in acks:
                yield ack
        finally:
            await acks.aclose()   # its own finally now (reader, metrics), not at some GC
            self._open.discard(stream)
            left = self._streams.pop(agent.key, 1) - 1
            if left:
                self._streams[agent.key] = left

    async def _acks(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext,
                    stream: _Stream) -> AsyncIterator[agent_pb2.Ack]:
        # the client knows its stream was accepted (authenticated) before any ack
        await context.send_initial_metadata(())
        pipeline: asyncio.Queue = asyncio.Queue()
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        reader = asyncio.create_task(self._read_batches(requests, stream, pipeline, slots))
        stream.reader = reader
        self._readers.add(reader)
        metrics.CONNECTED_AGENTS.inc()
        try:
            while True:
                item = await pipeline.get()
                if item is _END:
                    return
                if not isinstance(item, _Reject):
                    result = await _outcome(item)
                if isinstance(item, _Reject) or isinstance(result, _Reject):
                    reject = item if isinstance(item, _Reject) else result
                    item = result = None   # nothing of the batch outlives the refusal
                    _REJECTED.inc()
                    await self._abort(context, reject)
                slots.release()
                stream.in_flight_events -= item.events
                stream.room.set()
                if result.duplicate:
                    _DUPLICATE.inc()
                else:
                    _STORED.inc()
                    metrics.EVENTS.inc(item.events)
                metrics.ACK_LATENCY.observe(time.monotonic() - item.arrived)
                yield agent_pb2.Ack(sequence=item.sequence, duplicate=result.duplicate)
        finally:
            metrics.CONNECTED_AGENTS.dec()
            self._readers.discard(reader)
            reader.cancel()
            _forget(pipeline)

    def drain(self) -> None:
        """Shutting down: stop reading new batches; each open Upload acks what it has
        in flight, then ends with UNAVAILABLE (the agent retries later)."""
        self._draining = True
        for reader in list(self._readers):
            reader.cancel()

    async def _read_batches(self, requests: AsyncIterator[bytes], stream: _Stream,
                            pipeline: asyncio.Queue, slots: asyncio.Semaphore) -> None:
        """Parse, validate and queue each batch (at most MAX_IN_FLIGHT unacked); end
        with _END or one _Reject."""
        agent = stream.agent
        try:
            while True:
                await slots.acquire()
                while stream.in_flight_events >= MAX_IN_FLIGHT_EVENTS:
                    stream.room.clear()
                    await stream.room.wait()
                data = await anext(requests, None)
                if data is None:
                    break
                item = await self._still_valid(stream) or self._handle(data, stream)
                if isinstance(item, _Reject):
                    item = replace(item, size=len(data))
                pipeline.put_nowait(item)
                if isinstance(item, _Reject):
                    return
                stream.in_flight_events += item.events
        except asyncio.CancelledError:
            if stream.ended is not None:
                pipeline.put_nowait(stream.ended)
            elif self._draining:
                pipeline.put_nowait(_Reject(grpc.StatusCode.UNAVAILABLE,
                                            "the collector is shutting down; retry later",
                                            "unavailable"))
            raise
        except Exception as exc:  # the client went away mid-stream
            log.debug("upload stream from %s ended: %r", agent.agent_id, exc)
        pipeline.put_nowait(_END)

    def _handle(self, data: bytes, stream: _Stream) -> _InFlight | _Reject:
        """``_accept``, with a failure of the collector's own code told apart from a
        client going away: logged with its traceback, and INTERNAL for the stream (the
        agent keeps the batch and retries) instead of a silent end of stream."""
        try:
            return self._accept(data, stream)
        except Exception:
            log.exception("could not handle a batch from %s", stream.agent.agent_id)
            return _Reject(grpc.StatusCode.INTERNAL, "the collector failed to handle this "
                           "batch (its log says why); retry later", "internal")

    async def _still_valid(self, stream: _Stream) -> _Reject | None:
        """Re-check the stream's credential when this process changed credentials
        since (see the module docstring); a _Reject ends the stream."""
        changes = credential_changes()
        if changes == stream.checked_changes:
            return None
        try:
            agent = await asyncio.to_thread(authenticate, self.store, stream.credential)
        except StoreError as exc:
            return _store_failure(exc, None)
        stream.checked_changes = changes
        if agent is None:
            log.info("agent %s: credential revoked or replaced; ending its upload stream",
                     stream.agent.agent_id)
            return _REVOKED
        return None

    def _accept(self, data: bytes, stream: _Stream) -> _InFlight | _Reject:
        arrived = time.monotonic()
        agent = stream.agent
        too_many = self._too_many_in_bytes(data)
        if too_many is not None:
            return too_many
        try:
            batch = _parse(agent_pb2.Batch, data)
        except DecodeError as exc:
            return _Reject(grpc.StatusCode.INVALID_ARGUMENT, f"malformed Batch message: {exc}",
                           "malformed")
        del data
        too_many = self._too_many(batch)
        if too_many is not None:
            return too_many
        packed = bool(batch.packed)
        if packed:   # decoding resolves what it refers to earlier in the stream
            batch = self._unpack(batch, stream)
            if isinstance(batch, _Reject):
                return batch
        try:
            if not packed:
                refuse_stream_references(batch)
            expand_processes(batch)
        except PackingError as exc:
            return _Reject(grpc.StatusCode.INVALID_ARGUMENT,
                           f"batch {batch.sequence} rejected: {exc}", "invalid", batch.sequence)
        if batch.agent_id != agent.agent_id:
            return _Reject(grpc.StatusCode.PERMISSION_DENIED,
                           f"batch.agent_id {batch.agent_id[:64]!r} is not the agent of this "
                           f"credential ({agent.agent_id})", "permission", batch.sequence)
        records = extract(agent.key, batch)
        if rows_overlap(records.windows) or rows_overlap(records.activity):
            clip_overlaps(batch)
            records = extract(agent.key, batch)
        try:
            check_batch(batch, records, self.limits)
        except InvalidBatch as exc:
            return _Reject(grpc.StatusCode.INVALID_ARGUMENT,
                           f"batch {batch.sequence} rejected: {exc}", "invalid", batch.sequence)
        sequence = batch.sequence
        user = batch.host.user
        if user and user != stream.user:
            if stream.user:
                note_user_change(self.store, agent.key, agent.agent_id, stream.user, user)
            stream.user = user
        try:
            future = self.store.ingest_nowait(agent, batch, records, consume=True)
        except StoreError as exc:
            return _store_failure(exc, sequence)
        return _InFlight(sequence, future, arrived, records.count)

    def _too_many_in_bytes(self, data: bytes, sequence: int | None = None) -> _Reject | None:
        """Too many events, counted in a big message's bytes before it is parsed (see
        guards.records_over); the sequence is not known yet unless given."""
        if len(data) < PRESCAN_BYTES:
            return None
        count = records_over(data, self.limits.max_events)
        if count is None:
            return None
        which = f"batch {sequence}" if sequence is not None else "a batch"
        return _Reject(grpc.StatusCode.INVALID_ARGUMENT,
                       f"{which} rejected: too many events in one batch: more than "
                       f"{self.limits.max_events} (split it)", "invalid", sequence)

    def _too_many(self, batch: agent_pb2.Batch, sequence: int | None = None) -> _Reject | None:
        """Too many events, counted before anything is expanded or extracted (a
        16 MB message can hold 8 million empty records)."""
        limit = self.limits.max_events
        if not snapshots_fit(batch, limit):
            count = f"{len(batch.process_snapshots)} process snapshots"
        else:
            number = event_count(batch)
            if number <= limit:
                return None
            count = str(number)
        sequence = batch.sequence if sequence is None else sequence
        return _Reject(grpc.StatusCode.INVALID_ARGUMENT,
                       f"batch {sequence} rejected: too many events in one batch: "
                       f"{count} > {limit} (split it)", "invalid", sequence)

    def _unpack(self, outer: agent_pb2.Batch, stream: _Stream) -> agent_pb2.Batch | _Reject:
        """The batch a packed message carries, inflated in the stream's context."""
        sequence = outer.sequence

        def invalid(why: str) -> _Reject:
            return _Reject(grpc.StatusCode.INVALID_ARGUMENT,
                           f"batch {sequence} rejected: {why}", "malformed", sequence)

        extra = [f.name for f, _ in outer.ListFields() if f.name not in ("sequence", "packed")]
        if extra:
            return invalid(f"a packed batch carries only sequence and packed, not {extra}")
        if stream.inflater is None:
            stream.inflater = Inflater()
        try:
            data = stream.inflater.unpack(outer.packed, self.limits.max_message_bytes)
        except PackedTooLarge as exc:
            return _Reject(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           f"batch {sequence} rejected: {exc} (the maximum message size)",
                           "too_large", sequence)
        except PackingError as exc:
            return invalid(str(exc))
        too_many = self._too_many_in_bytes(data, sequence)
        if too_many is not None:
            return too_many
        try:
            batch = _parse(agent_pb2.Batch, data)
        except DecodeError as exc:
            return invalid(f"packed bytes inflate to a malformed Batch message: {exc}")
        if batch.packed:
            return invalid("packed bytes inflate to a batch that is packed again")
        too_many = self._too_many(batch, sequence)
        if too_many is not None:
            return too_many
        if batch.sequence not in (0, sequence):
            return invalid(f"packed bytes carry sequence {batch.sequence}")
        batch.sequence = sequence
        if stream.deltas is None:
            stream.deltas = StreamDeltas()
        try:
            stream.deltas.decode(batch)
        except PackingError as exc:
            return invalid(str(exc))
        return batch
