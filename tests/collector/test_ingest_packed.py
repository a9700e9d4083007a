"""Packed batches (Batch.packed: one DEFLATE context per Upload stream, process
samples as snapshots, times and memory as differences within the stream)
against a real collector over a socket: they are stored exactly as the plain
batches they stand for, and bad packed input gets the
right status naming the batch, stores nothing of it, and leaves everyone else
served."""

from __future__ import annotations

import math
import zlib

import grpc
import pytest
from collector_harness import collector_config, make_batch, now_ms
from ingest_support import NOTHING, Bystander, rejected_sequence, stored, upload_error
from worklens.common.packing import (
    EXTENSIONS,
    PACKING,
    RECENT_PROCESS,
    SAME_WINDOW,
    Deflater,
    Inflater,
    Packer,
    PackingError,
    StreamDeltas,
    expand_processes,
    pack_processes,
    refuse_stream_references,
)
from worklens.v1 import agent_pb2


def packed(batches: list[agent_pb2.Batch], packer: Packer | None = None
           ) -> list[agent_pb2.Batch]:
    """What the shipper sends to this collector: each batch packed, in order, in one
    stream's context, with every extension the collector announces."""
    packer = packer or Packer(EXTENSIONS)
    return [packer.pack(copy_of(batch)) for batch in batches]


def copy_of(batch: agent_pb2.Batch) -> agent_pb2.Batch:
    out = agent_pb2.Batch()
    out.CopyFrom(batch)
    return out


def psutil_like(agent_id: str, sequence: int, samples: int = 12) -> agent_pb2.Batch:
    """A batch whose process samples look like the sensor's: RSS in pages, CPU
    time in clock ticks, cpu_percent rounded to 3 decimals over a real interval."""
    batch = make_batch(agent_id, sequence, processes=0)
    t = now_ms() - 120_000
    for i in range(samples):
        used = round(0.01 * (37 * i + sequence) % 9.0, 2)
        interval = 60.0 + 0.0004 * i            # the sensor's interval is not whole ms
        batch.processes.add(time_ms=t, pid=300 + i, name=f"proc{i % 5}", user="alice",
                            cpu_percent=round(100.0 * used / interval, 3),
                            rss_bytes=(5000 + 97 * i) * 4096, cpu_seconds=round(used, 6),
                            interval_ms=round(interval * 1000))
    return batch


def rows(collector, agent, table: str, columns: str) -> list[tuple]:
    return sorted(collector.query(
        f"SELECT {columns} FROM {table} WHERE agent = (SELECT id FROM agents WHERE "
        f"agent_id = ?)", (agent.agent_id,)))


# -- the codec on its own -------------------------------------------------------------------

def test_process_snapshots_expand_to_exactly_the_samples_they_pack():
    batch = psutil_like("ag-x", 1, samples=40)
    original = list(batch.processes)
    assert pack_processes(batch)
    assert not batch.processes and batch.process_snapshots
    # ticks -> 2 decimals, pages -> unit 4096: the compact form really is compact
    assert {(s.cpu_decimals, s.rss_unit) for s in batch.process_snapshots} == {(2, 4096)}
    assert sum(snap.ByteSize() for snap in batch.process_snapshots) < \
        0.7 * sum(sample.ByteSize() for sample in original)
    expand_processes(batch)
    assert list(batch.processes) == original


def test_samples_that_would_not_expand_exactly_stay_plain():
    batch = psutil_like("ag-x", 1, samples=3)
    batch.processes[1].cpu_seconds = math.pi          # no exact decimal form
    before = list(batch.processes)
    assert not pack_processes(batch)
    assert list(batch.processes) == before and not batch.process_snapshots


def test_one_context_per_stream_and_nothing_more_than_the_limit_is_inflated():
    deflater, inflater = Deflater(), Inflater()
    text = "".join(f"{j} - Report {j * 7919 % 1000}.ods - LibreOffice Calc/soffice.bin;"
                   for j in range(40)).encode()
    messages = [text + bytes([i]) for i in range(5)]
    sizes = []
    for message in messages:
        data = deflater.pack(message)
        sizes.append(len(data))
        assert inflater.unpack(data, 10_000) == message
    assert sizes[-1] < sizes[0] / 5           # later messages lean on the earlier ones
    with pytest.raises(PackingError, match="expand to more than 100 bytes"):
        Inflater().unpack(Deflater().pack(bytes(1000)), 100)


def an_hour_of_batches(agent_id: str) -> list[agent_pb2.Batch]:
    """What one agent sends in an hour at a 5-minute flush: spans that follow each
    other, a snapshot a minute with the same processes' memory moving a little (one
    of them reported in bytes, not pages, for a while), system totals a minute."""
    out, t0 = [], now_ms() - 3_600_000
    end = activity_end = t0
    for n in range(12):
        batch = psutil_like(agent_id, n + 1, samples=0)
        batch.created_ms = t0 + n * 300_000
        del batch.windows[:]
        del batch.activity[:]
        del batch.system[:]
        for k in range(3):
            duration = 40_000 + 1000 * k + n
            batch.windows.add(start_ms=end, duration_ms=duration, app="code", title=f"f{k}.py")
            end += duration
        batch.activity.add(start_ms=activity_end, duration_ms=290_000, state=1, key_presses=n)
        activity_end += 290_000
        for minute in range(5):
            at = t0 + (n * 5 + minute) * 60_000
            for pid in range(10):
                rss = (9000 + 37 * pid + (n * 5 + minute) * (pid - 4)) * 4096
                if pid == 3 and 4 <= n <= 6:
                    rss += 1          # not page-aligned: that snapshot goes in bytes
                batch.processes.add(time_ms=at, pid=400 + pid, name=f"proc{pid}",
                                    user="alice", cpu_percent=0.5, rss_bytes=rss,
                                    cpu_seconds=0.3, interval_ms=60_000)
            batch.system.add(time_ms=at, cpu_percent=12.5, mem_total_bytes=16 << 30,
                             mem_used_bytes=(6 << 30) + n, process_count=300, cpu_count=8)
        out.append(batch)
    return out


@pytest.mark.parametrize("extensions", [(), EXTENSIONS], ids=["v2", "extensions"])
def test_differences_from_the_stream_round_trip_exactly_and_are_small(extensions):
    sender, receiver = StreamDeltas(extensions=frozenset(extensions)), StreamDeltas()
    as_absolute, as_differences = Deflater(), Deflater()   # the wire: after DEFLATE
    absolute_bytes = encoded_bytes = 0
    for original in an_hour_of_batches("ag-x"):
        assert pack_processes(original)
        sent = copy_of(original)
        sender.encode(sent)
        absolute_bytes += len(as_absolute.pack(original.SerializeToString()))
        encoded_bytes += len(as_differences.pack(sent.SerializeToString()))
        if original.sequence > 1:   # spans and snapshots follow what came before
            assert {w.start_ms for w in sent.windows} == {0}
            assert {s.time_ms for s in sent.process_snapshots} == {0}
            assert {s.time_ms for s in sent.system} == {60_000}
        # the same ten processes every minute: after the first snapshot, each is
        # named by its place among those the stream remembers
        entries = [e for snap in sent.process_snapshots for e in snap.entries][
            10 if original.sequence == 1 else 0:]
        assert [(e.HasField("recent"), e.pid, e.name, e.user) for e in entries] == (
            [(True, 0, "", "")] * len(entries) if extensions else
            [(False, e.pid, e.name, "alice") for e in entries])
        received = agent_pb2.Batch.FromString(sent.SerializeToString())
        receiver.decode(received)
        original.ClearField("created_ms")   # not sent: the collector never reads it
        assert received == original
    assert encoded_bytes < 0.5 * absolute_bytes   # this regular hour: ~0.27


def test_a_process_is_named_by_its_place_only_while_both_ends_know_it_the_same():
    sender, receiver = StreamDeltas(extensions=frozenset({RECENT_PROCESS})), StreamDeltas()

    def snapshot(*entries: tuple[int, str, str]) -> agent_pb2.Batch:
        batch = agent_pb2.Batch()
        snap = batch.process_snapshots.add(time_ms=1, interval_ms=60_000, rss_unit=4096)
        for pid, name, user in entries:
            snap.entries.add(pid=pid, name=name, user=user, rss=100 + pid, cpu=pid)
        return batch

    minutes = [snapshot((1, "a", "alice"), (2, "b", "alice"), (3, "c", "root")),
               # c listed last before: place 0; b before it: 1; a new one; a's user changed
               snapshot((3, "c", "root"), (2, "b", "alice"), (4, "d", "bob"), (1, "a", "bob")),
               snapshot((1, "a", "bob"), (1, "a", "bob"))]   # twice: the same place twice
    sent_places = []
    for original in minutes:
        sent = copy_of(original)
        sender.encode(sent)
        sent_places.append([e.recent if e.HasField("recent") else e.name
                            for e in sent.process_snapshots[0].entries])
        receiver.decode(sent)
        assert sent == original
    assert sent_places == [["a", "b", "c"], [0, 1, "d", "a"], [0, 0]]
    assert sender.rss == receiver.rss


@pytest.mark.parametrize("entry, words", [
    (agent_pb2.ProcessEntry(recent=2, cpu=1), "recent 2: this stream remembers 2"),
    (agent_pb2.ProcessEntry(recent=0, name="x"), "recent with its own pid, name or user"),
], ids=["beyond-memory", "own-fields"])
def test_a_process_place_that_leads_nowhere_is_a_packing_error(entry, words):
    deltas = StreamDeltas()
    first = agent_pb2.Batch()
    first.process_snapshots.add(interval_ms=60_000).entries.extend(
        [agent_pb2.ProcessEntry(pid=1, name="a"), agent_pb2.ProcessEntry(pid=2, name="b")])
    deltas.decode(first)
    batch = agent_pb2.Batch()
    batch.process_snapshots.add(interval_ms=60_000).entries.append(entry)
    with pytest.raises(PackingError, match=words):
        deltas.decode(copy_of(batch))
    with pytest.raises(PackingError, match="outside a packed batch"):
        refuse_stream_references(batch)


def test_both_ends_forget_the_same_processes():
    """A stream may last for weeks of new pids: both ends keep the last 256 listed."""
    sender, receiver = StreamDeltas(), StreamDeltas()

    def snapshot(pids: range) -> agent_pb2.Batch:
        batch = agent_pb2.Batch()
        snap = batch.process_snapshots.add(time_ms=1, interval_ms=60_000, rss_unit=4096)
        for pid in pids:
            snap.entries.add(pid=pid, name="p", rss=1000 + pid)
        return batch

    for pids in (range(300), range(0, 300, 50)):   # 0..43 are forgotten, 44.. are not
        batch = snapshot(pids)
        sender.encode(batch)
        if pids.step == 50:
            assert [e.HasField("rss_change") for e in batch.process_snapshots[0].entries] == \
                [False, True, True, True, True, True]
        receiver.decode(batch)
        assert [e.rss for e in batch.process_snapshots[0].entries] == [1000 + p for p in pids]
    assert sender.rss == receiver.rss and len(receiver.rss) == 256


def test_a_difference_that_leads_nowhere_is_a_packing_error():
    batch = agent_pb2.Batch()
    batch.process_snapshots.add(time_ms=1, interval_ms=60_000).entries.add(
        pid=7, name="ghost", rss_change=-3)
    with pytest.raises(PackingError, match="rss_change for process 7"):
        StreamDeltas().decode(batch)
    far = agent_pb2.Batch()
    far.windows.add(start_ms=2**63 - 10, duration_ms=60_000)
    with pytest.raises(PackingError, match="window end"):
        StreamDeltas().decode(far)
    with pytest.raises(PackingError, match="outside a packed batch"):
        refuse_stream_references(batch)


def cut_windows(agent_id: str, sequence: int, start: int) -> agent_pb2.Batch:
    """Window spans as an agent that cuts open spans at flushes sends them: a
    window, then its continued parts; the same app and title again after another
    window (a new span, not a part); an excluded app's span and its part."""
    batch = make_batch(agent_id, sequence, windows=0, activity=0, processes=0, system=0)
    spans = [("code", "notes.py - code", 4242, "/usr/bin/code", False, False),
             ("code", "notes.py - code", 4242, "/usr/bin/code", False, True),
             ("firefox", "Inbox", 900, "/usr/lib/firefox/firefox", False, False),
             ("code", "notes.py - code", 4242, "/usr/bin/code", False, False),
             ("", "", 0, "", True, False),
             ("", "", 0, "", True, True)]
    for i, (app, title, pid, exe, excluded, continued) in enumerate(spans):
        batch.windows.add(start_ms=start + i * 10_000, duration_ms=10_000, app=app, title=title,
                          pid=pid, exe=exe, excluded=excluded, continued=continued)
    return batch


def test_continued_window_parts_travel_without_their_window_and_expand_exactly():
    sender, receiver = StreamDeltas(extensions=frozenset({SAME_WINDOW})), StreamDeltas()
    start = now_ms() - 600_000
    first = cut_windows("ag-x", 1, start)
    second = cut_windows("ag-x", 2, start + 60_000)
    # the first span of batch 2 is a part of the excluded span batch 1 ended with
    second.windows[0].CopyFrom(agent_pb2.WindowSpan(
        start_ms=second.windows[0].start_ms, duration_ms=10_000, excluded=True, continued=True))
    for original in (first, second):
        sent = copy_of(original)
        sender.encode(sent)
        elided = [(s.app, s.title, s.pid, s.exe) for s in sent.windows if s.same_window]
        assert elided == [("", "", 0, "")] * len(elided)
        received = agent_pb2.Batch.FromString(sent.SerializeToString())
        receiver.decode(received)
        original.ClearField("created_ms")
        assert received == original
    # only continued parts, and a part that follows the previous batch's last span
    assert [span.same_window for span in first.windows] == [False] * 6   # (the originals)
    sent = copy_of(first)
    StreamDeltas(extensions=frozenset({SAME_WINDOW})).encode(sent)
    assert [span.same_window for span in sent.windows] == \
        [False, True, False, False, False, True]


def test_without_the_extension_continued_parts_keep_their_window():
    """What an agent sends a collector that did not list "same-window"."""
    sent = cut_windows("ag-x", 1, now_ms() - 600_000)
    StreamDeltas().encode(sent)
    assert not any(span.same_window for span in sent.windows)
    assert [span.app for span in sent.windows] == ["code", "code", "firefox", "code", "", ""]
    with_it = Packer([SAME_WINDOW]).pack(cut_windows("ag-x", 1, now_ms() - 600_000))
    without = Packer().pack(cut_windows("ag-x", 1, now_ms() - 600_000))
    assert len(with_it.packed) < len(without.packed)


@pytest.mark.parametrize("change, words", [
    (lambda b: b.windows.pop(0), "no window span before it"),
    (lambda b: setattr(b.windows[1], "continued", False), "not continued"),
    (lambda b: setattr(b.windows[1], "title", "other"), "its own app, title"),
], ids=["first-in-stream", "not-continued", "own-fields"])
def test_a_same_window_that_leads_nowhere_is_a_packing_error(change, words):
    batch = agent_pb2.Batch()
    batch.windows.add(start_ms=1000, duration_ms=5, app="code", title="t")
    batch.windows.add(start_ms=0, duration_ms=5, continued=True, same_window=True)
    change(batch)
    with pytest.raises(PackingError, match=words):
        StreamDeltas().decode(batch)
    with pytest.raises(PackingError, match="outside a packed batch"):
        refuse_stream_references(batch)


def test_times_that_cannot_be_differences_go_plain_and_leave_the_stream_alone():
    packer, inflater, receiver = Packer(), Inflater(), StreamDeltas()
    batches = [make_batch("ag-x", seq, processes=0, system=0) for seq in (1, 2, 3)]
    batches[0].windows[-1].start_ms = 2**62            # the stream's last end: far ahead
    batches[1].windows[0].start_ms = -2**62            # a difference beyond int64
    messages = packed(batches, packer)
    assert messages[0].packed and messages[2].packed
    assert not messages[1].packed and messages[1].sequence == 2   # sent as it is
    for message, original in ((messages[0], batches[0]), (messages[2], batches[2])):
        received = agent_pb2.Batch.FromString(inflater.unpack(message.packed, 1 << 20))
        receiver.decode(received)
        received.sequence = original.sequence
        original.ClearField("created_ms")
        assert received == original


# -- against the real collector ---------------------------------------------------------------

def test_hello_says_packed_batches_are_accepted(collector):
    agent = collector.enroll_agent()
    with collector.channel() as channel:
        hello = collector.stub(channel).Hello(agent_pb2.HelloRequest(), metadata=agent.metadata,
                                              timeout=30)
    assert hello.batch_packing == PACKING
    assert list(hello.packing_extensions) == [SAME_WINDOW, RECENT_PROCESS]


@pytest.mark.parametrize("extensions", [(), EXTENSIONS], ids=["older-agent", "extensions"])
def test_packed_batches_are_stored_exactly_like_the_plain_ones(collector, bystander,
                                                               extensions):
    plain_agent, packed_agent = collector.enroll_agent(), collector.enroll_agent()
    batches = [psutil_like("", seq) for seq in range(1, 6)]

    def for_agent(agent):
        out = []
        for batch in batches:
            copy = copy_of(batch)
            copy.agent_id = agent.agent_id
            out.append(copy)
        return out

    assert [a.sequence for a in collector.upload(plain_agent, for_agent(plain_agent))] == \
        [1, 2, 3, 4, 5]
    acks = collector.upload(packed_agent, packed(for_agent(packed_agent), Packer(extensions)))
    assert [(a.sequence, a.duplicate) for a in acks] == [(s, False) for s in range(1, 6)]
    assert stored(collector, packed_agent) == stored(collector, plain_agent) == (5, 15, 15, 60, 5)
    assert sorted(collector.process_samples(packed_agent.agent_id)) == \
        sorted(collector.process_samples(plain_agent.agent_id))
    for table, columns in (("window_spans", "start_ms, duration_ms, app, title, pid, exe, "
                                            "username"),
                           ("system_totals", "time_ms, cpu_percent, mem_used_bytes")):
        assert rows(collector, packed_agent, table, columns) == \
            rows(collector, plain_agent, table, columns)
    # a resend of the same batches on a new stream (new context) is a duplicate
    acks = collector.upload(packed_agent, packed(for_agent(packed_agent)[3:]))
    assert [(a.sequence, a.duplicate) for a in acks] == [(4, True), (5, True)]


def test_corrupt_packed_bytes_are_invalid_argument_naming_the_batch(collector, bystander):
    agent = collector.enroll_agent()
    good, bad = packed([make_batch(agent.agent_id, 1), make_batch(agent.agent_id, 2)])
    bad.packed = bytes([bad.packed[0] ^ 0xFF]) + b"\xff" * 40   # not DEFLATE any more
    acks, error = upload_error(collector, agent, [good, bad])
    assert [a.sequence for a in acks] == [1]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batch 2" in error.details() and "inflate" in error.details()
    assert rejected_sequence(error) == "2"
    assert stored(collector, agent)[0] == 1


def test_packed_bytes_inflating_to_garbage_are_invalid_argument(collector, bystander):
    agent = collector.enroll_agent()
    garbage = agent_pb2.Batch(sequence=1, packed=Deflater().pack(b"\xff\xff\xff\xff"))
    acks, error = upload_error(collector, agent, [garbage])
    assert acks == [] and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batch 1" in error.details() and "malformed Batch" in error.details()
    assert stored(collector, agent) == NOTHING


def test_a_decompression_bomb_is_resource_exhausted_and_not_inflated(collector_factory):
    small = collector_factory(collector_config(grpc={"max_message_mb": 1}))
    other = Bystander(small)
    agent = small.enroll_agent()
    inner = make_batch(agent.agent_id, 1)
    inner.ClearField("sequence")
    # a valid batch followed by 64 MB of an unknown field: ~64 KB on the wire
    bomb = inner.SerializeToString() + b"\x9a\x05" + b"\x80\x80\x80\x20" + bytes(64 << 20)
    message = agent_pb2.Batch(sequence=1, packed=Deflater().pack(bomb))
    assert len(message.packed) < 100_000
    acks, error = upload_error(small, agent, [message])
    assert acks == []
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "batch 1" in error.details() and "more than 1048576 bytes" in error.details()
    assert rejected_sequence(error) == "1"
    assert "retry-after-ms" not in dict(error.trailing_metadata() or ())   # it never fits
    assert stored(small, agent) == NOTHING
    other.roundtrip()
    other.close()


def test_a_batch_packed_in_another_streams_context_is_invalid_argument(collector, bystander):
    agent = collector.enroll_agent()
    first, second = packed([make_batch(agent.agent_id, 1), make_batch(agent.agent_id, 2)])
    # batch 2 refers back to batch 1, which this stream never saw
    acks, error = upload_error(collector, agent, [second])
    assert acks == []
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batch 2" in error.details()
    assert rejected_sequence(error) == "2"
    assert stored(collector, agent) == NOTHING
    # the same two in their own context, on a new stream, are fine
    assert [a.sequence for a in collector.upload(agent, [first, second])] == [1, 2]


@pytest.mark.parametrize("mutate, words", [
    (lambda b: setattr(b, "agent_id", "ag-outside"), "only sequence and packed"),
    (lambda b: setattr(b, "packed", Deflater().pack(agent_pb2.Batch(
        packed=b"x").SerializeToString())), "packed again"),
    (lambda b: setattr(b, "packed", Deflater().pack(agent_pb2.Batch(
        sequence=9).SerializeToString())), "sequence 9"),
    (lambda b: setattr(b, "packed", zlib.compressobj(6, zlib.DEFLATED, -15).compress(
        b"\x08\x01") + zlib.compressobj(6, zlib.DEFLATED, -15).flush()), "final block"),
], ids=["outer-fields", "nested", "other-sequence", "final-block"])
def test_packed_framing_rules_are_invalid_argument(collector, bystander, mutate, words):
    agent = collector.enroll_agent()
    (message,) = packed([make_batch(agent.agent_id, 1)])
    mutate(message)
    acks, error = upload_error(collector, agent, [message])
    assert acks == [] and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in error.details() and "batch 1" in error.details()
    assert stored(collector, agent) == NOTHING


def test_unpacked_batches_get_the_same_validation(collector, bystander):
    agent = collector.enroll_agent()
    too_long = make_batch(agent.agent_id, 1, title="t" * 3000)
    acks, error = upload_error(collector, agent, packed([too_long]))
    assert acks == [] and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "title" in error.details() and rejected_sequence(error) == "1"
    other_agent = make_batch("ag-someoneelse", 1)
    acks, error = upload_error(collector, agent, packed([other_agent]))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert stored(collector, agent) == NOTHING


def test_bad_process_snapshot_is_invalid_argument(collector, bystander):
    agent = collector.enroll_agent()
    batch = make_batch(agent.agent_id, 1, processes=0)
    batch.process_snapshots.add(time_ms=now_ms() - 60_000, interval_ms=60_000,
                                cpu_decimals=40).entries.add(pid=1, name="x", cpu=5)
    acks, error = upload_error(collector, agent, packed([batch]))
    assert acks == [] and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cpu_decimals" in error.details() and rejected_sequence(error) == "1"
    assert stored(collector, agent) == NOTHING


def test_an_rss_change_the_stream_cannot_follow_is_invalid_argument(collector, bystander):
    agent = collector.enroll_agent()
    batch = make_batch(agent.agent_id, 1, processes=0)
    batch.ClearField("sequence")
    batch.process_snapshots.add(time_ms=now_ms() - 60_000, interval_ms=60_000).entries.add(
        pid=7, name="ghost", cpu=5, rss_change=-3)
    message = agent_pb2.Batch(sequence=1, packed=Deflater().pack(batch.SerializeToString()))
    acks, error = upload_error(collector, agent, [message])
    assert acks == [] and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rss_change for process 7" in error.details() and rejected_sequence(error) == "1"
    # the same snapshot in a plain batch is refused too: differences only live in streams
    batch.sequence = 1
    acks, error = upload_error(collector, agent, [batch])
    assert acks == [] and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "outside a packed batch" in error.details()
    assert stored(collector, agent) == NOTHING


def test_continued_parts_packed_without_their_window_are_stored_like_plain_ones(
        collector, bystander):
    plain_agent, packed_agent = collector.enroll_agent(), collector.enroll_agent()
    start = now_ms() - 600_000
    columns = "start_ms, duration_ms, app, title, pid, exe, excluded, continued"
    for agent, packer in ((plain_agent, None), (packed_agent, Packer([SAME_WINDOW]))):
        batches = [cut_windows(agent.agent_id, seq, start + (seq - 1) * 60_000)
                   for seq in (1, 2)]
        messages = packed(batches, packer) if packer else batches
        assert [a.sequence for a in collector.upload(agent, messages)] == [1, 2]
    assert rows(collector, packed_agent, "window_spans", columns) == \
        rows(collector, plain_agent, "window_spans", columns)
    assert [row[2:] for row in rows(collector, packed_agent, "window_spans", columns)][:2] == \
        [("code", "notes.py - code", 4242, "/usr/bin/code", 0, 0),
         ("code", "notes.py - code", 4242, "/usr/bin/code", 0, 1)]


def test_same_window_outside_a_stream_or_leading_nowhere_is_invalid_argument(
        collector, bystander):
    agent = collector.enroll_agent()
    plain = cut_windows(agent.agent_id, 1, now_ms() - 600_000)
    plain.windows[1].same_window = True
    acks, error = upload_error(collector, agent, [plain])
    assert acks == [] and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "same_window outside a packed batch" in error.details()
    assert rejected_sequence(error) == "1"
    inner = cut_windows(agent.agent_id, 1, now_ms() - 600_000)
    inner.ClearField("sequence")
    inner.windows[0].continued = inner.windows[0].same_window = True   # nothing before it
    for name in ("app", "title", "pid", "exe"):
        inner.windows[0].ClearField(name)
    message = agent_pb2.Batch(sequence=1, packed=Deflater().pack(inner.SerializeToString()))
    acks, error = upload_error(collector, agent, [message])
    assert acks == [] and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batch 1" in error.details() and "no window span before it" in error.details()
    assert stored(collector, agent) == NOTHING
