"""Property-based tests (Hypothesis, issue 18) for what hostile clients reach:
the batch validators and overlap clipping, the packed-batch decoder, the CSV
cell writer, log escaping, and the date/duration parsers of the API and CLI.
Bounded example counts so that they run in `make test`."""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import zlib
from datetime import date

from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from worklens.collector.access.tokens import expires_problem
from worklens.collector.ingest.guards import (
    BIDI_CONTROLS,
    event_count,
    for_log,
    has_control,
    records_over,
    snapshots_fit,
)
from worklens.collector.ingest.validate import InvalidBatch, Limits, check_batch
from worklens.collector.reports.csvexport import rfc4180, safe
from worklens.collector.reports.dates import (
    FIRST_DATE,
    LAST_DATE,
    DateError,
    midnight_ms,
    parse_date,
    parse_tz,
)
from worklens.collector.store.overlaps import clip_overlaps
from worklens.collector.store.records import extract
from worklens.common.durations import parse_duration
from worklens.common.packing import (
    EXTENSIONS,
    Inflater,
    Packer,
    PackingError,
    StreamDeltas,
    expand_processes,
    refuse_stream_references,
)
from worklens.v1 import agent_pb2

EXAMPLES = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
NOW = 1_800_000_000_000
INT64 = st.integers(-2**63, 2**63 - 1)
UINT64 = st.integers(0, 2**64 - 1)
UINT32 = st.integers(0, 2**32 - 1)
INT32 = st.integers(-2**31, 2**31 - 1)
TEXT = st.text(max_size=40)
NEAR_NOW = st.integers(NOW - 10 * 86_400_000, NOW + 600_000)
SOME_INT64 = st.one_of(NEAR_NOW, INT64)

windows = st.builds(agent_pb2.WindowSpan, start_ms=SOME_INT64,
                    duration_ms=st.one_of(st.integers(-10, 8 * 86_400_000), INT64),
                    app=TEXT, title=TEXT, pid=INT32, exe=TEXT, excluded=st.booleans())
activity = st.builds(agent_pb2.ActivitySpan, start_ms=SOME_INT64,
                     duration_ms=st.one_of(st.integers(-10, 8 * 86_400_000), INT64),
                     state=st.integers(0, 6), key_presses=UINT32, clicks=UINT32)
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
processes = st.builds(agent_pb2.ProcessSample, time_ms=SOME_INT64, pid=INT32, name=TEXT,
                      user=TEXT, cpu_percent=st.floats(width=32), rss_bytes=UINT64,
                      cpu_seconds=FLOATS, interval_ms=st.one_of(st.integers(0, 10**6), INT64))
system = st.builds(agent_pb2.SystemTotals, time_ms=SOME_INT64, cpu_percent=st.floats(width=32),
                   mem_total_bytes=UINT64, mem_used_bytes=UINT64)
batches = st.builds(
    agent_pb2.Batch, agent_id=st.just("ag-x"), sequence=st.one_of(st.integers(0, 3), UINT64),
    host=st.builds(agent_pb2.HostInfo, hostname=st.text(max_size=300), user=TEXT),
    windows=st.lists(windows, max_size=8), activity=st.lists(activity, max_size=8),
    processes=st.lists(processes, max_size=4), system=st.lists(system, max_size=2),
    dropped_events=UINT64)


# -- validators -------------------------------------------------------------------------------

@EXAMPLES
@given(batches)
def test_validation_accepts_or_names_a_limit_never_anything_else(batch):
    clip_overlaps(batch)
    records = extract(1, batch)
    try:
        check_batch(batch, records, Limits(), now_ms=NOW)
    except InvalidBatch as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    # what passes fits the store: signed 64-bit integers, finite numbers
    for row in (*records.windows, *records.activity, *records.processes, *records.system):
        for value in row:
            if isinstance(value, int):
                assert -2**63 <= value < 2**63
            if isinstance(value, float):
                assert value == value and abs(value) != float("inf")
    assert 1 <= batch.sequence < 2**63


def _covered(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [tuple(m) for m in merged]


spans = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3_000)), max_size=30)


@EXAMPLES
@given(spans)
def test_clipping_removes_every_overlap_and_keeps_the_covered_time(pairs):
    batch = agent_pb2.Batch()
    for start, length in pairs:
        batch.windows.add(start_ms=start, duration_ms=length, app="a")
        batch.activity.add(start_ms=start, duration_ms=length, state=1)
    before = _covered([(s, s + d) for s, d in pairs])
    clip_overlaps(batch)
    for kind in (batch.windows, batch.activity):
        after = sorted((s.start_ms, s.start_ms + s.duration_ms) for s in kind)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(after))
        assert sum(e - s for s, e in after) == sum(e - s for s, e in before)
        assert _covered(after) == before


# -- the packed-batch decoder -----------------------------------------------------------------

def _decode(packed: bytes, limit: int = 1 << 20) -> agent_pb2.Batch:
    """The collector's unpacking steps, in its order."""
    data = Inflater().unpack(packed, limit)
    batch = agent_pb2.Batch()
    batch.ParseFromString(data)
    StreamDeltas().decode(batch)
    expand_processes(batch)
    return batch


@EXAMPLES
@given(st.binary(max_size=400))
def test_arbitrary_packed_bytes_fail_only_with_a_named_error(data):
    with contextlib.suppress(PackingError, DecodeError):
        _decode(data)


@EXAMPLES
@given(batches, st.integers(0, 7), st.data())
def test_corrupted_packed_batches_fail_only_with_a_named_error(batch, bit, data):
    packed = Packer().pack(batch).packed
    if not packed:
        return
    index = data.draw(st.integers(0, len(packed) - 1))
    flipped = bytearray(packed)
    flipped[index] ^= 1 << bit
    cut = data.draw(st.integers(0, len(packed)))
    for candidate in (bytes(flipped), packed[:cut]):
        with contextlib.suppress(PackingError, DecodeError):
            _decode(candidate)


# process samples as the sensor reports them (pages, ticks), from a few processes
# that come back: what the packing names by their place in the stream's memory
sensor_samples = st.builds(
    agent_pb2.ProcessSample, time_ms=NEAR_NOW, pid=st.integers(1, 3),
    name=st.sampled_from(["firefox", "code", "Xorg"]), user=st.sampled_from(["alice", "root"]),
    cpu_percent=st.floats(0, 400, width=32),
    rss_bytes=st.integers(0, 2**40).map(lambda pages: pages * 4096),
    cpu_seconds=st.integers(0, 10**6).map(lambda t: t / 100), interval_ms=st.just(60_000))


@EXAMPLES
@given(st.lists(st.tuples(batches, st.lists(sensor_samples, min_size=1, max_size=6),
                          st.booleans()),
                min_size=1, max_size=5))
def test_a_stream_packed_with_every_extension_expands_to_the_batches_sent(stream):
    packer, inflater, receiver = Packer(EXTENSIONS), Inflater(), StreamDeltas()
    for batch, samples, cut in stream:
        batch.processes.extend(samples)
        if cut and batch.windows:   # a continued part of the last window span
            part = batch.windows.add()
            part.CopyFrom(batch.windows[-2])
            part.start_ms = (part.start_ms + part.duration_ms) % 2**63
            part.continued = True
        original = agent_pb2.Batch()
        original.CopyFrom(batch)
        message = packer.pack(batch)
        if message.packed:
            received = agent_pb2.Batch.FromString(inflater.unpack(message.packed, 1 << 24))
            receiver.decode(received)
            received.sequence = message.sequence
            original.ClearField("created_ms")
        else:
            received = message
        refuse_stream_references(received)
        expand_processes(received)
        assert received == original


@EXAMPLES
@given(st.integers(1, 40))
def test_inflating_never_produces_more_than_the_limit(kib):
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = bomb.compress(b"\0" * (kib * 1024)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    try:
        out = Inflater().unpack(packed[:-4], 8 * 1024)
    except PackingError:
        return
    assert len(out) <= 8 * 1024


# -- CSV cells and log lines ------------------------------------------------------------------

FORMULA_STARTS = set("=+-@\t\r\n") | set("\uff1d\uff0b\uff0d\uff20")


@EXAMPLES
@given(st.text(max_size=60))
def test_csv_cells_are_never_formulas_and_never_hide_characters(text):
    cell = safe(text)
    if cell and not cell.startswith("'"):
        assert cell[0] not in FORMULA_STARTS and not cell[0].isspace()
    assert BIDI_CONTROLS.isdisjoint(cell)
    assert all(c in "\t\n\r" or not (ord(c) < 32 or 0x7F <= ord(c) < 0xA0) for c in cell)
    # one RFC 4180 cell: a CSV reader gets back exactly the neutralised text
    line = "x," + rfc4180(text) + "\r\n"
    assert next(csv.reader(io.StringIO(line, newline=""))) == ["x", cell]


@EXAMPLES
@given(st.text(max_size=200))
def test_logged_client_text_is_one_printable_line(text):
    shown = for_log(text)
    assert "\n" not in shown and "\r" not in shown and not has_control(shown)
    assert shown.isascii()


# -- dates and durations of the API and CLI ---------------------------------------------------

@EXAMPLES
@given(st.one_of(st.text(max_size=20), st.dates().map(date.isoformat),
                 st.integers(0, 10**6).map(lambda n: f"{n}d")))
def test_dates_parse_or_say_why_and_parsed_ones_give_midnights(text):
    tz = parse_tz("Pacific/Kiritimati")
    try:
        day = parse_date(text, tz)
    except DateError as exc:
        assert str(exc)
        return
    assert FIRST_DATE <= day <= LAST_DATE
    assert midnight_ms(day, tz) < 2**62


@EXAMPLES
@given(st.one_of(st.text(max_size=30), st.integers(0, 10**500).map(lambda n: f"{n}w")))
def test_token_lifetimes_parse_or_say_why_and_always_fit_the_store(text):
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    if expires_problem(seconds) is None:
        assert 0 < int(seconds * 1000) < 2**62


@EXAMPLES
@given(batches, st.integers(1, 12), st.lists(st.integers(0, 5), max_size=4))
def test_counting_records_in_the_bytes_agrees_with_the_parsed_batch(batch, limit, entries):
    for n in entries:
        batch.process_snapshots.add(time_ms=NOW).entries.extend(
            [agent_pb2.ProcessEntry(pid=1)] * n)
    over = records_over(batch.SerializeToString(), limit)
    if snapshots_fit(batch, limit) and event_count(batch) <= limit:
        assert over is None
    else:
        assert over is not None and over > limit
