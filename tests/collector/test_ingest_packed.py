"""Packed batches (Batch.packed: one DEFLATE context per Upload stream, process
samples as snapshots) against a real collector over a socket: they are stored
exactly as the plain batches they stand for, and bad packed input gets the
right status naming the batch, stores nothing of it, and leaves everyone else
served."""

from __future__ import annotations

import math
import zlib

import grpc
import pytest
from collector_harness import collector_config, make_batch, now_ms
from ingest_support import NOTHING, Bystander, rejected_sequence, stored, upload_error
from worklens.packing import (
    PACKING,
    Deflater,
    Inflater,
    PackingError,
    expand_processes,
    pack_processes,
)
from worklens.v1 import agent_pb2


def packed(batches: list[agent_pb2.Batch], deflater: Deflater | None = None
           ) -> list[agent_pb2.Batch]:
    """What the shipper sends: each batch packed, in order, in one context."""
    deflater = deflater or Deflater()
    out = []
    for batch in batches:
        inner = agent_pb2.Batch()
        inner.CopyFrom(batch)
        inner.ClearField("sequence")
        pack_processes(inner)
        out.append(agent_pb2.Batch(sequence=batch.sequence,
                                   packed=deflater.pack(inner.SerializeToString())))
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


PROCESS_COLUMNS = ("time_ms, pid, name, username, cpu_percent, rss_bytes, cpu_seconds, "
                   "interval_ms")


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


# -- against the real collector ---------------------------------------------------------------

def test_hello_says_packed_batches_are_accepted(collector):
    agent = collector.enroll_agent()
    with collector.channel() as channel:
        hello = collector.stub(channel).Hello(agent_pb2.HelloRequest(), metadata=agent.metadata,
                                              timeout=30)
    assert hello.batch_packing == PACKING


def test_packed_batches_are_stored_exactly_like_the_plain_ones(collector, bystander):
    plain_agent, packed_agent = collector.enroll_agent(), collector.enroll_agent()
    batches = [psutil_like("", seq) for seq in range(1, 6)]

    def for_agent(agent):
        out = []
        for batch in batches:
            copy = agent_pb2.Batch()
            copy.CopyFrom(batch)
            copy.agent_id = agent.agent_id
            out.append(copy)
        return out

    assert [a.sequence for a in collector.upload(plain_agent, for_agent(plain_agent))] == \
        [1, 2, 3, 4, 5]
    acks = collector.upload(packed_agent, packed(for_agent(packed_agent)))
    assert [(a.sequence, a.duplicate) for a in acks] == [(s, False) for s in range(1, 6)]
    assert stored(collector, packed_agent) == stored(collector, plain_agent) == (5, 15, 15, 60, 5)
    for table, columns in (("process_samples", PROCESS_COLUMNS),
                           ("window_spans", "start_ms, duration_ms, app, title, pid, exe, "
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
