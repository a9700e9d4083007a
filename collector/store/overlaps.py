"""Overlapping spans in one batch are clipped, not stored twice.

Window spans of one agent describe one timeline (one window has focus at a
time), and so do its activity spans (one state at a time). An agent never
sends two spans of one kind that overlap, so overlapping input is either a
broken clock or an attack: ten copies of the same one-hour window would count
ten hours of active time in one hour, and N x M mutually overlapping window and
activity spans cost the rollups N x M pairings.

Policy (docs/security.md): CLIP, not refuse. A refused batch is lost for good
(the agent must not resend it as is), and a wall clock stepped back by NTP
makes a few honest milliseconds overlap. So, per kind, the spans are taken in
start order and each keeps only the part after the end of everything before
it; a span left with nothing is dropped. Adjacent spans (one ends where the
next starts, e.g. an open span cut at a flush and its continuation) do not
overlap and are untouched. Cost: one pass, plus a sort only when the spans
are out of order.

Across batches the agent's spans are stored as sent (see docs/security.md for
what that leaves open).
"""

from __future__ import annotations

import bisect

from worklens.v1 import agent_pb2


def rows_overlap(rows: list[tuple]) -> bool:
    """Do these spans (``records`` rows: start at 1, duration at 2) overlap? One pass
    over the tuples the servicer extracted anyway; the common answer is no."""
    end = None
    for row in rows:
        start = row[1]
        if end is not None and start < end:
            return True
        stop = start + row[2]
        if end is None or stop > end:
            end = stop
    return False


def clip_overlaps(batch: agent_pb2.Batch) -> int:
    """Clip overlapping window spans and activity spans of ``batch`` in place;
    returns how many spans were shortened or dropped."""
    return _clip(batch.windows) + _clip(batch.activity)


def _clip(spans) -> int:
    if len(spans) < 2:
        return 0
    bounds = [(s.start_ms, s.start_ms + s.duration_ms) for s in spans]
    if not _overlapping(bounds):
        return 0
    if any(stop < start for start, stop in bounds):
        return 0   # negative durations: validation refuses the batch
    new_start: dict[int, int | None] = {}
    end = None
    for start, stop, index in sorted((b[0], b[1], i) for i, b in enumerate(bounds)):
        if end is not None and start < end:
            new_start[index] = end if stop > end else None
        if end is None or stop > end:
            end = stop
    if not new_start:
        return 0
    kept = []
    for index, span in enumerate(spans):
        start = new_start.get(index, span.start_ms)
        if start is None:
            continue
        copy = type(span)()
        copy.CopyFrom(span)
        if start != span.start_ms:
            copy.duration_ms = bounds[index][1] - start
            copy.start_ms = start
        kept.append(copy)
    del spans[:]
    spans.extend(kept)
    return len(new_start)


def _overlapping(bounds: list[tuple[int, int]]) -> bool:
    """True unless the spans are in start order and none starts before the previous
    ones ended (the common case: one pass, no sort)."""
    end = None
    for start, stop in bounds:
        if end is not None and start < end:
            return True
        if end is None or stop > end:
            end = stop
    return False


# -- across batches: the first stored span of an instant wins --------------------------------
# Used by the rollups (collector.rollup) for agents whose spans ever overlapped what
# they had stored: raw rows stay as sent, and each counts only the time that no span of
# its kind stored before it (lower rowid) covers. Non-overlapping input is unchanged by
# this, so ingest and rebuild agree whatever the arrival order.

class Covered:
    """Disjoint, sorted intervals: the time some spans already cover."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def take(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of [start, end) not covered yet; from now on all of it is."""
        if end <= start:
            return []
        starts, ends = self._starts, self._ends
        first = bisect.bisect_right(ends, start)
        last, cursor, parts = first, start, []
        while last < len(starts) and starts[last] < end:
            if starts[last] > cursor:
                parts.append((cursor, starts[last]))
            cursor = max(cursor, ends[last])
            last += 1
        if cursor < end:
            parts.append((cursor, end))
        if last > first:
            starts[first:last] = [min(start, starts[first])]
            ends[first:last] = [max(end, ends[last - 1])]
        else:
            starts.insert(first, start)
            ends.insert(first, end)
        return parts


def window_pieces(rows: list[tuple], covered: Covered) -> tuple[list[tuple], bool]:
    """Window rows (``records`` layout, in rowid order) cut to the time ``covered`` did
    not have yet; True if any was cut."""
    out, cut = [], False
    for row in rows:
        start, duration = row[1], row[2]
        parts = covered.take(start, start + duration)
        if duration <= 0 or parts == [(start, start + duration)]:
            out.append(row)
            continue
        cut = True
        out.extend((row[0], lo, hi - lo, *row[3:]) for lo, hi in parts)
    return out, cut


def activity_pieces(rows: list[tuple], covered: Covered) -> tuple[list[tuple], bool]:
    """As ``window_pieces`` for activity rows; a cut row keeps its input counts at its
    own start (a zero-length row), its time goes to the pieces (without counts)."""
    out, cut = [], False
    for row in rows:
        start, duration = row[1], row[2]
        parts = covered.take(start, start + duration)
        if duration <= 0 or parts == [(start, start + duration)]:
            out.append(row)
            continue
        cut = True
        out.append((row[0], start, 0, *row[3:]))
        out.extend((row[0], lo, hi - lo, row[3], 0, 0, 0, 0, row[8]) for lo, hi in parts)
    return out, cut
