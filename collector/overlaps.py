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

from worklens.v1 import agent_pb2


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
