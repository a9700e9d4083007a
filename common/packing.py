"""The packed transport form of batches, shared by the agent (packs) and the
collector (unpacks) so that both sides run the same arithmetic.

Why: an agent-day is ~700 small batches (one per 30 s flush). gRPC's gzip
compresses each message on its own, so every batch pays for a gzip header and
for re-learning the same app names, titles and process names; a day came to
~310 KB on the wire. Two transport-only measures, both lossless and both
invisible to the store (the spool keeps plain batches, the collector stores
the batch they expand to):

* one raw DEFLATE context per Upload stream, carried over from batch to batch
  and sync-flushed after each (WebSocket permessage-deflate with context
  takeover): what earlier batches said is the dictionary for the next one;
* process samples as ``ProcessSnapshot``: the shared time and interval once,
  memory in pages, CPU time as an integer in its coarsest exact decimal unit,
  and cpu_percent only when it is not the value derived from the rest.
  A batch is packed this way only when every sample expands back exactly;
* times and memory as differences from what the stream said before
  (``StreamDeltas``): a span starts where the previous one ended, a snapshot a
  sampling interval after the previous one, a process's memory moves a little
  from minute to minute. Absolute milliseconds since 1970 cost ~4 bytes of
  entropy each, these differences mostly one; together with not sending the
  unused ``created_ms`` that is ~14 KB of an agent-day's ~64 KB of payload;
* references to what the stream said before instead of repeating it: a
  ``continued`` window span (the agent cuts open spans at flushes for
  freshness, ~630 times an agent-day) as ``same_window``, without the app,
  title, pid and exe of the span it continues (~7.5 bytes a part even after
  DEFLATE, ~4.7 KB a day); a process the stream listed before as ``recent``,
  its place among the processes both ends remember, instead of its pid, name
  and user (a match back into the DEFLATE window costs ~3 bytes, the place
  about one; ~4.7 KB a day). Both are extensions a collector announces
  (``HelloResponse.packing_extensions``): an older collector does not, and an
  agent uses only those announced, so either side may be older than the other.

See the ``Batch.packed`` and ``ProcessSnapshot`` comments in agent.proto for
the wire contract.
"""

from __future__ import annotations

import logging
import math
import struct
import zlib
from dataclasses import dataclass, field
from itertools import islice

from worklens.v1 import agent_pb2

log = logging.getLogger(__name__)

PACKING = "deflate-stream-v2"
# Additions to the packing (HelloResponse.packing_extensions); this side's decoder
# understands them all, its encoder uses those the other end listed.
SAME_WINDOW = "same-window"
RECENT_PROCESS = "recent-process"
EXTENSIONS = (SAME_WINDOW, RECENT_PROCESS)
SYNC_TAIL = b"\x00\x00\xff\xff"   # ends every sync flush; not sent
WINDOW_BITS = 15                  # 32 KiB window, raw deflate (no zlib/gzip header)
MAX_CPU_DECIMALS = 9
PAGE = 4096
MAX_UINT64 = 2**64 - 1
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
# Processes whose last rss a stream remembers (see StreamDeltas._remember).
REMEMBERED_PROCESSES = 256


class PackingError(ValueError):
    """Packed bytes that cannot be unpacked (says why)."""


class PackedTooLarge(PackingError):
    """Packed bytes that would expand past the allowed size (a zip bomb)."""


# -- the per-stream DEFLATE context ---------------------------------------------------------

class Deflater:
    """The sending side of one stream's context: one per Upload stream."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(9, zlib.DEFLATED, -WINDOW_BITS, 9)

    def pack(self, data: bytes) -> bytes:
        out = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        if not out.endswith(SYNC_TAIL):   # zlib always ends a sync flush so
            raise AssertionError("zlib sync flush without its empty stored block")
        return out[:-len(SYNC_TAIL)]


class Inflater:
    """The receiving side of one stream's context: one per Upload stream. After
    an error the context is unusable (the stream ends with that error)."""

    def __init__(self) -> None:
        self._decompressor = zlib.decompressobj(-WINDOW_BITS)

    def unpack(self, data: bytes, limit: int) -> bytes:
        """The bytes ``data`` expands to; never allocates more than ``limit`` + 1."""
        try:
            out = self._decompressor.decompress(data + SYNC_TAIL, limit + 1)
        except zlib.error as exc:
            raise PackingError(f"packed bytes do not inflate in this stream's context "
                               f"({exc})") from None
        if len(out) > limit or self._decompressor.unconsumed_tail:
            raise PackedTooLarge(f"packed bytes expand to more than {limit} bytes")
        if self._decompressor.eof:
            raise PackingError("packed bytes end the deflate stream (final block); "
                               "a stream's context must stay open")
        return out


# -- process snapshots ----------------------------------------------------------------------

def _float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def derived_cpu_percent(cpu_seconds: float, interval_ms: int) -> float:
    """What the agent's sensor computes from the same figures (as a proto float)."""
    if interval_ms <= 0:
        return 0.0
    return _float32(round(100.0 * cpu_seconds / (interval_ms / 1000), 3))


def _cpu_decimals(values: list[float]) -> int | None:
    """The fewest decimals that represent every value exactly as an integer."""
    if not all(math.isfinite(v) and v >= 0 for v in values):
        return None
    for decimals in range(MAX_CPU_DECIMALS + 1):
        scale = 10 ** decimals
        # v * scale first: a huge finite value times 10**d is inf, which round() refuses
        if all(v * scale <= MAX_UINT64 and round(v * scale) / scale == v
               for v in values):
            return decimals
    return None


def _snapshot(samples: list[agent_pb2.ProcessSample]) -> agent_pb2.ProcessSnapshot | None:
    first = samples[0]
    decimals = _cpu_decimals([s.cpu_seconds for s in samples])
    if decimals is None:
        return None
    unit = PAGE if all(s.rss_bytes % PAGE == 0 for s in samples) else 1
    snap = agent_pb2.ProcessSnapshot(time_ms=first.time_ms, interval_ms=first.interval_ms,
                                     rss_unit=unit, cpu_decimals=decimals)
    scale = 10 ** decimals
    for s in samples:
        entry = snap.entries.add(pid=s.pid, name=s.name, user=s.user, rss=s.rss_bytes // unit,
                                 cpu=round(s.cpu_seconds * scale))
        if derived_cpu_percent(s.cpu_seconds, s.interval_ms) != s.cpu_percent:
            entry.cpu_percent = s.cpu_percent
    return snap


def pack_processes(batch: agent_pb2.Batch) -> bool:
    """Move ``batch.processes`` into ``process_snapshots`` (consecutive samples of
    one sampling point share a snapshot) if every sample expands back exactly;
    else leave the batch as it is. True if it packed."""
    if not batch.processes:
        return False
    groups: list[list[agent_pb2.ProcessSample]] = []
    for sample in batch.processes:
        last = groups[-1][0] if groups else None
        if last is not None and (last.time_ms, last.interval_ms) == (sample.time_ms,
                                                                     sample.interval_ms):
            groups[-1].append(sample)
        else:
            groups.append([sample])
    snapshots = [_snapshot(group) for group in groups]
    if any(snap is None for snap in snapshots):
        return False
    check = agent_pb2.Batch(process_snapshots=snapshots)
    expand_processes(check)
    if list(check.processes) != list(batch.processes):   # belt and braces: exact or plain
        return False
    batch.ClearField("processes")
    batch.process_snapshots.extend(snapshots)
    return True


def expand_processes(batch: agent_pb2.Batch) -> None:
    """Turn ``process_snapshots`` back into ``processes`` (appended after any plain
    ones); raises PackingError for values no ProcessSample can hold. What entries
    refer to in a stream is resolved before (``StreamDeltas.decode``; a plain batch
    must pass ``refuse_stream_references``)."""
    if not batch.process_snapshots:
        return
    for snap in batch.process_snapshots:
        if snap.cpu_decimals > MAX_CPU_DECIMALS:
            raise PackingError(f"process snapshot cpu_decimals {snap.cpu_decimals} > "
                               f"{MAX_CPU_DECIMALS}")
        unit = snap.rss_unit or 1
        scale = 10 ** snap.cpu_decimals
        for entry in snap.entries:
            rss = entry.rss * unit
            if rss > MAX_UINT64:
                raise PackingError(f"process snapshot rss {entry.rss} x {unit} overflows")
            cpu_seconds = entry.cpu / scale
            cpu_percent = (entry.cpu_percent if entry.HasField("cpu_percent")
                           else derived_cpu_percent(cpu_seconds, snap.interval_ms))
            batch.processes.add(time_ms=snap.time_ms, pid=entry.pid, name=entry.name,
                                user=entry.user, cpu_percent=cpu_percent, rss_bytes=rss,
                                cpu_seconds=cpu_seconds, interval_ms=snap.interval_ms)
    batch.ClearField("process_snapshots")


# -- differences from what the stream said before ------------------------------------------

def _int64(value: int, what: str) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise PackingError(f"{what} {value} is out of range")
    return value


def _spans_as_differences(spans, end: int) -> int:
    """Each span's start as the difference from where the one before ended (``end``
    for the first); returns where the last one ends."""
    for span in spans:
        start, span.start_ms = span.start_ms, span.start_ms - end
        end = start + span.duration_ms
    return end


def _spans_from_differences(spans, end: int, kind: str) -> int:
    """The inverse of _spans_as_differences, checking every value stays in int64."""
    for span in spans:
        span.start_ms = _int64(span.start_ms + end, f"{kind} start")
        end = _int64(span.start_ms + span.duration_ms, f"{kind} end")
    return end


# The fields of a window span that ``same_window`` takes from the one before, and
# of a process entry that ``recent`` takes from the stream's memory.
WINDOW_FIELDS = ("app", "title", "pid", "exe", "excluded")
PROCESS_FIELDS = ("pid", "name", "user")
Window = tuple[str, str, int, str, bool]


def _window_of(span: agent_pb2.WindowSpan) -> Window:
    return (span.app, span.title, span.pid, span.exe, span.excluded)


def refuse_stream_references(batch: agent_pb2.Batch) -> None:
    """Raise PackingError for a plain batch that refers to what a stream said
    before (``same_window``, ``rss_change``, ``recent``): only a packed batch has a
    stream's state behind it, and its references are resolved when it is decoded."""
    if any(span.same_window for span in batch.windows):
        raise PackingError("window span same_window outside a packed batch's stream")
    for snap in batch.process_snapshots:
        if any(entry.HasField("rss_change") or entry.HasField("recent")
               for entry in snap.entries):
            raise PackingError("process snapshot rss_change or recent outside a packed "
                               "batch's stream")


@dataclass
class StreamDeltas:
    """What one end of an Upload stream remembers so that times and memory travel
    as differences, and continued window spans without their window (the rules
    are in agent.proto, Batch.packed). The agent's shipper encodes each batch
    after ``pack_processes``; the collector decodes it right after inflating,
    before anything else looks at it. Each side keeps one per stream, updated
    with the absolute values in send order. ``extensions`` (sender only): those
    the collector announced, which the encoder may use."""

    window_end: int = 0
    activity_end: int = 0
    snapshot_next: int = 0
    system_time: int = 0
    # (pid, name) -> (rss bytes, user), least recently listed first
    rss: dict[tuple[int, str], tuple[int, str]] = field(default_factory=dict)
    window: Window | None = None   # the stream's previous window span's fields
    extensions: frozenset[str] = frozenset()

    def _remember(self, key: tuple[int, str], rss_bytes: int, user: str) -> None:
        """Both ends forget the same processes: the least recently listed beyond
        REMEMBERED_PROCESSES (a stream may last for weeks of changing pids)."""
        self.rss.pop(key, None)
        self.rss[key] = (rss_bytes, user)
        if len(self.rss) > REMEMBERED_PROCESSES:
            del self.rss[next(iter(self.rss))]

    def encode(self, batch: agent_pb2.Batch) -> None:
        """Turn ``batch`` (absolute values) into differences, in place. Raises
        PackingError (leaving batch and state untouched) for times whose differences
        would not fit in int64."""
        self._check_encodable(batch)
        batch.ClearField("created_ms")
        self._elide_windows(batch.windows)
        self.window_end = _spans_as_differences(batch.windows, self.window_end)
        self.activity_end = _spans_as_differences(batch.activity, self.activity_end)
        for snap in batch.process_snapshots:
            time_ms, snap.time_ms = snap.time_ms, snap.time_ms - self.snapshot_next
            self.snapshot_next = time_ms + snap.interval_ms
            self._encode_entries(snap)
        for totals in batch.system:
            time_ms, totals.time_ms = totals.time_ms, totals.time_ms - self.system_time
            self.system_time = time_ms

    def _encode_entries(self, snap: agent_pb2.ProcessSnapshot) -> None:
        unit = snap.rss_unit or 1
        recent = RECENT_PROCESS in self.extensions
        for entry in snap.entries:
            key, rss, user = (entry.pid, entry.name), entry.rss, entry.user
            old = self.rss.get(key)
            if old is not None and old[0] % unit == 0 and \
                    INT64_MIN <= rss - old[0] // unit <= INT64_MAX:
                entry.rss_change = rss - old[0] // unit
                entry.ClearField("rss")
            if recent and old is not None and old[1] == user:
                entry.recent = self._place(key)
                for name in PROCESS_FIELDS:
                    entry.ClearField(name)
            self._remember(key, rss * unit, user)

    def _place(self, key: tuple[int, str]) -> int:
        """A remembered process's place: 0 = the one listed last. A stable top list
        sent in the same order each time is the same place over and over."""
        for place, listed in enumerate(reversed(self.rss)):
            if listed == key:
                return place
        raise AssertionError("a remembered process is not in the stream's memory")

    def _elide_windows(self, spans) -> None:
        """A continued part of the stream's previous window span: its window is not
        repeated (``same_window``) when the collector understands that."""
        for span in spans:
            window = _window_of(span)
            if SAME_WINDOW in self.extensions and span.continued and window == self.window:
                for name in WINDOW_FIELDS:
                    span.ClearField(name)
                span.same_window = True
            self.window = window

    def _restore_windows(self, spans) -> None:
        """The inverse of _elide_windows, refusing a reference that leads nowhere."""
        for span in spans:
            if span.same_window:
                if self.window is None:
                    raise PackingError("window span same_window with no window span before "
                                       "it in this stream")
                if not span.continued:
                    raise PackingError("window span same_window on a span that is not "
                                       "continued")
                if any(getattr(span, name) for name in WINDOW_FIELDS):
                    raise PackingError("window span same_window with its own app, title, "
                                       "pid, exe or excluded")
                span.app, span.title, span.pid, span.exe, span.excluded = self.window
                span.ClearField("same_window")
            self.window = _window_of(span)

    def _check_encodable(self, batch: agent_pb2.Batch) -> None:
        ends = {"windows": self.window_end, "activity": self.activity_end}
        for kind in ("windows", "activity"):
            end = ends[kind]
            for span in getattr(batch, kind):
                _int64(span.start_ms - end, f"{kind} start difference")
                end = _int64(span.start_ms + span.duration_ms, f"{kind} end")
        following = self.snapshot_next
        for snap in batch.process_snapshots:
            _int64(snap.time_ms - following, "process snapshot time difference")
            following = _int64(snap.time_ms + snap.interval_ms, "process snapshot end")
        previous = self.system_time
        for totals in batch.system:
            _int64(totals.time_ms - previous, "system totals time difference")
            previous = totals.time_ms

    def decode(self, batch: agent_pb2.Batch) -> None:
        """Turn the differences in ``batch`` back into absolute values, in place.
        Raises PackingError for differences that lead nowhere (then the stream ends:
        the state is no longer the sender's)."""
        self.window_end = _spans_from_differences(batch.windows, self.window_end, "window")
        self._restore_windows(batch.windows)
        self.activity_end = _spans_from_differences(batch.activity, self.activity_end,
                                                    "activity")
        for snap in batch.process_snapshots:
            snap.time_ms = _int64(snap.time_ms + self.snapshot_next, "process snapshot time")
            self.snapshot_next = _int64(snap.time_ms + snap.interval_ms,
                                        "process snapshot end")
            self._decode_entries(snap)
        for totals in batch.system:
            totals.time_ms = _int64(totals.time_ms + self.system_time, "system totals time")
            self.system_time = totals.time_ms

    def _decode_entries(self, snap: agent_pb2.ProcessSnapshot) -> None:
        unit = snap.rss_unit or 1
        for entry in snap.entries:
            key = self._recall(entry) if entry.HasField("recent") else (entry.pid, entry.name)
            if entry.HasField("rss_change"):
                entry.rss = self._changed_rss(key, unit, entry.rss_change, entry.rss)
                entry.ClearField("rss_change")
            self._remember(key, entry.rss * unit, entry.user)

    def _recall(self, entry: agent_pb2.ProcessEntry) -> tuple[int, str]:
        """Fill in the process at place ``entry.recent`` of the stream's memory
        (_place); returns its (pid, name)."""
        place = entry.recent
        if place >= len(self.rss):
            raise PackingError(f"process entry recent {place}: this stream remembers "
                               f"{len(self.rss)} processes")
        key = next(islice(reversed(self.rss), place, None))
        if entry.pid or entry.name or entry.user:
            raise PackingError("process entry recent with its own pid, name or user")
        entry.pid, entry.name = key
        entry.user = self.rss[key][1]
        entry.ClearField("recent")
        return key

    def _changed_rss(self, key: tuple[int, str], unit: int, change: int, rss: int) -> int:
        old = self.rss.get(key)
        if old is None or old[0] % unit or rss:
            raise PackingError(f"rss_change for process {key[0]} ({key[1][:64]!r}) that "
                               "this stream did not list before in this unit (or with rss)")
        value = old[0] // unit + change
        if not 0 <= value <= MAX_UINT64:
            raise PackingError(f"rss_change {change} takes process {key[0]}'s rss out of "
                               "range")
        return value


class Packer:
    """The sending side of one Upload stream: process snapshots, differences from
    what the stream said before, then its DEFLATE context. One per stream; batches
    must be packed in send order."""

    def __init__(self, extensions: tuple[str, ...] | list[str] = ()) -> None:
        """``extensions``: the collector's HelloResponse.packing_extensions (those this
        side knows are used)."""
        self._deflater = Deflater()
        self._deltas = StreamDeltas(extensions=frozenset(extensions) & set(EXTENSIONS))

    def pack(self, batch: agent_pb2.Batch) -> agent_pb2.Batch:
        """The message that carries ``batch`` (which is changed in place): packed, or
        for a batch whose times cannot be stated as differences, the batch itself
        (with its process snapshots, which the collector expands as well)."""
        sequence = batch.sequence
        batch.ClearField("sequence")
        pack_processes(batch)
        try:
            self._deltas.encode(batch)
        except PackingError as exc:
            log.warning("batch %d sent unpacked: %s", sequence, exc)
            batch.sequence = sequence
            return batch
        return agent_pb2.Batch(sequence=sequence,
                               packed=self._deflater.pack(batch.SerializeToString()))
