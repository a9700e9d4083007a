"""Limits that hold before a caller is trusted, and checks that cost little
before work that costs a lot (docs/security.md lists them with their defaults).

Why a module of its own: the servicer (``collector.ingest``) must refuse a
hostile call before it parses, expands or stores anything, and these checks
are what makes that cheap:

* ``Enroll`` and ``Hello`` carry a secret, an install id and host facts (a few
  hundred bytes); a message over ``MAX_ENROLL_BYTES`` / ``MAX_HELLO_BYTES`` is
  refused before it is parsed, whatever ``[grpc] max_message_mb`` allows batches;
* ``FailedEnrollments``: a peer (IP address) whose enrollments keep failing is
  refused for a while without looking at the secret (a token bucket per peer);
* ``event_count``: the records a batch WILL have once its process snapshots are
  expanded, counted from the repeated fields' lengths (C-speed ``len``), so
  "too many events" is said before a single record object is built;
* ``collect_garbage_soon``: memory a refused call held is given back (below);
* ``has_control`` / ``for_log``: identifiers with control characters are refused
  and client text is escaped before it reaches a log line.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from worklens.v1 import agent_pb2

MAX_ENROLL_BYTES = 8 * 1024     # secret (~50) + install id (<= 128) + host facts (<= 900)
MAX_HELLO_BYTES = 4 * 1024      # host facts only
# Failed enrollments per peer: a burst of this many, then one more per
# FAILED_ENROLL_REFILL_S seconds.
FAILED_ENROLL_BURST = 10
FAILED_ENROLL_REFILL_S = 6.0
TRACKED_PEERS = 10_000          # peers remembered (least recently failed forgotten first)

_CONTROL = frozenset(chr(c) for c in (*range(0x20), *range(0x7F, 0xA0)))
# Characters that change how the text around them is displayed (bidirectional
# embeddings, overrides and isolates, and the implicit direction marks).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")


def has_control(text: str) -> bool:
    """True if ``text`` holds a C0/C1 control or a bidirectional control character."""
    return not _CONTROL.isdisjoint(text) or not BIDI_CONTROLS.isdisjoint(text)


def for_log(text: str, limit: int = 128) -> str:
    """Client text made safe for one log line: quoted and escaped as a Python string
    literal (a newline is ``\\n``, never a line of its own), cut at ``limit``."""
    text = str(text)
    cut = text[:limit]
    shown = repr(cut).encode("ascii", "backslashreplace").decode("ascii")
    return shown + ("..." if len(text) > limit else "")


def event_count(batch: agent_pb2.Batch) -> int:
    """Records ``batch`` stands for once its process snapshots are expanded.

    ``len`` of a repeated field does not build its elements; the loop runs over
    snapshots, which the caller has bounded first (``snapshots_fit``)."""
    count = (len(batch.windows) + len(batch.activity) + len(batch.processes)
             + len(batch.system))
    for snap in batch.process_snapshots:
        count += len(snap.entries)
    return count


def snapshots_fit(batch: agent_pb2.Batch, max_events: int) -> bool:
    """Each snapshot holds at least one record: more snapshots than events is too
    many, checked before ``event_count`` walks them."""
    return len(batch.process_snapshots) <= max_events


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class FailedEnrollments:
    """A token bucket per peer address: each failed enrollment takes a token; a peer
    without one is refused (RESOURCE_EXHAUSTED with ``retry-after-ms``) before its
    secret is even looked at. Successful enrollments cost nothing."""

    burst: int = FAILED_ENROLL_BURST
    refill_s: float = FAILED_ENROLL_REFILL_S
    _peers: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict)

    def _bucket(self, peer: str, now: float) -> _Bucket:
        bucket = self._peers.get(peer)
        if bucket is None:
            return _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst),
                            bucket.tokens + (now - bucket.updated) / self.refill_s)
        bucket.updated = now
        return bucket

    def retry_after_ms(self, peer: str, now: float | None = None) -> int | None:
        """None if ``peer`` may try now, else how long it must wait."""
        if self.burst <= 0:
            return None
        now = time.monotonic() if now is None else now
        bucket = self._bucket(peer, now)
        if bucket.tokens >= 1:
            return None
        return int((1 - bucket.tokens) * self.refill_s * 1000) + 1

    def failed(self, peer: str, now: float | None = None) -> None:
        if self.burst <= 0:
            return
        now = time.monotonic() if now is None else now
        bucket = self._bucket(peer, now)
        bucket.tokens = max(0.0, bucket.tokens - 1)
        self._peers[peer] = bucket
        self._peers.move_to_end(peer)
        while len(self._peers) > TRACKED_PEERS:
            self._peers.popitem(last=False)


def peer_address(peer: str) -> str:
    """``ipv4:10.0.0.7:51234`` -> ``ipv4:10.0.0.7`` (the port changes per connection)."""
    if peer.startswith(("ipv4:", "ipv6:")):
        host, _, port = peer.rpartition(":")
        return host if port.isdigit() else peer
    return peer


# -- memory held by refused calls ----------------------------------------------------------
# grpc's aio server ends an aborted call by raising inside its own handler frames; the
# exception's traceback keeps those frames, and with them the call's message receiver
# and the last message received (up to [grpc] max_message_mb), in a reference cycle.
# Only the cyclic garbage collector frees it, and the collector tunes that to run
# rarely (collector.store.records.tune_garbage_collector: gc.freeze, high thresholds),
# so refused calls piled up: 500 refused 1 MB enrollments held 1.5 GB. Our handlers
# drop the request before aborting; this collects what grpc keeps, once per
# GC_AFTER_REFUSAL_S at most, whatever the rate of refusals.
GC_AFTER_REFUSAL_S = 1.0
# ... or sooner, once refused calls brought this many bytes since the last collection
# (a flood of 16 MB messages would otherwise hold ~16 MB x calls per second).
GC_REFUSED_BYTES = 32 * 1024 * 1024
GC_SOON_S = 0.05
_pending: asyncio.TimerHandle | None = None
_refused_bytes = 0


def collect_garbage_soon(size: int = 0) -> None:
    """Schedule one full garbage collection GC_AFTER_REFUSAL_S from now (unless one is
    already scheduled), or GC_SOON_S from now once GC_REFUSED_BYTES were refused; call
    from the event loop after refusing a call of ``size`` bytes."""
    global _pending, _refused_bytes
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    _refused_bytes += size
    soon = _refused_bytes >= GC_REFUSED_BYTES
    if _pending is not None:
        if not soon or _pending.when() <= loop.time() + GC_SOON_S:
            return
        _pending.cancel()
    _pending = loop.call_later(GC_SOON_S if soon else GC_AFTER_REFUSAL_S, _collect)


def _collect() -> None:
    global _pending, _refused_bytes
    _pending, _refused_bytes = None, 0
    gc.collect()


# -- counting records in the wire bytes, before protobuf parses them -------------------------
# Parsing is the one step before the "too many events" check that still grows with a
# message's record count, and protobuf holds the interpreter lock while it parses: a
# 16 MB batch of 8 million empty records kept the event loop for ~1.7 s. A message of
# PRESCAN_BYTES or more is first walked field by field (Batch fields 5-8 are one record
# each, field 11 a snapshot whose field 5 entries are) until the count passes the limit.
PRESCAN_BYTES = 1024 * 1024
_RECORD_FIELDS = frozenset((5, 6, 7, 8))
_SNAPSHOTS, _ENTRIES = 11, 5


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes, pos: int, end: int):
    """(field number, start, end) of each length-delimited field in data[pos:end]."""
    while pos < end:
        tag, pos = _varint(data, pos)
        kind = tag & 7
        if kind == 2:
            length, pos = _varint(data, pos)
            yield tag >> 3, pos, pos + length
            pos += length
        elif kind == 0:
            _, pos = _varint(data, pos)
        elif kind == 1:
            pos += 8
        elif kind == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {kind}")


def records_over(data: bytes, limit: int) -> int | None:
    """A count of more than ``limit`` records in these serialized Batch bytes (stopping
    as soon as it is), or None: at most ``limit``, or bytes the parser must judge."""
    count = snapshots = 0
    try:
        for number, start, end in _fields(data, 0, len(data)):
            if number in _RECORD_FIELDS:
                count += 1
            elif number == _SNAPSHOTS:
                snapshots += 1   # more snapshots than events is too many (snapshots_fit)
                if snapshots > limit:
                    return snapshots
                for inner, _s, _e in _fields(data, start, end):
                    count += inner == _ENTRIES
                    if count > limit:
                        return count
            if count > limit:
                return count
    except (ValueError, IndexError):
        return None
    return None


# -- big buffers go back to the system --------------------------------------------------------
# glibc serves allocations of MMAP_THRESHOLD or more with mmap, and gives them back on
# free; but it raises that threshold to the size of each such block freed (up to 32 MB),
# so after a few refused 15 MB messages every later one came from the heap, whose freed
# space stays in the process: 60 refused 15 MB enrollments and 150 refused 15 MB batches
# left the collector ~190 MB larger for good. A fixed threshold (which also turns the
# adjustment off) gives the memory back: +13 MB and +23 MB in the same test.
MMAP_THRESHOLD = 1024 * 1024
_M_MMAP_THRESHOLD = -3   # mallopt parameter number in glibc's malloc.h


def return_big_frees_to_the_system() -> bool:
    """Fix glibc's mmap threshold at MMAP_THRESHOLD (no-op elsewhere); True if set."""
    try:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        return False
    return bool(mallopt and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
