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
  A batch is packed this way only when every sample expands back exactly.

See the ``Batch.packed`` and ``ProcessSnapshot`` comments in agent.proto for
the wire contract.
"""

from __future__ import annotations

import math
import struct
import zlib

from worklens.v1 import agent_pb2

PACKING = "deflate-stream-v1"
SYNC_TAIL = b"\x00\x00\xff\xff"   # ends every sync flush; not sent
WINDOW_BITS = 15                  # 32 KiB window, raw deflate (no zlib/gzip header)
MAX_CPU_DECIMALS = 9
PAGE = 4096
MAX_UINT64 = 2**64 - 1


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
        if all(round(v * scale) <= MAX_UINT64 and round(v * scale) / scale == v
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
    ones); raises PackingError for values no ProcessSample can hold."""
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
