"""The shipper against real gRPC servers: the real collector (in-process, on a
free port) for delivery, dead letters, authentication and sequence alignment,
and a small scripted AgentService for what a healthy collector rarely does on
cue (RESOURCE_EXHAUSTED with a retry-after, acks that never come)."""

from __future__ import annotations

import random
import threading
import time
from concurrent import futures

import grpc
import pytest
from byteproxy import ByteCountingProxy
from collector_harness import InProcessCollector, make_batch
from delivery_support import HOST, make_shipper, spool_with, window
from polling import wait_for
from worklens.agent.credential import Connection, Credential
from worklens.agent.shipper import Backoff, Shipper
from worklens.agent.spool import Spool
from worklens.collector.access.enrollment import revoke_agent
from worklens.common.packing import PACKING, SAME_WINDOW, Inflater, StreamDeltas
from worklens.v1 import agent_pb2, agent_pb2_grpc


@pytest.fixture
def collector(tmp_path):
    instance = InProcessCollector(tmp_path / "collector")
    yield instance
    instance.stop()


@pytest.fixture
def agent(collector):
    return collector.enroll_agent()


def stored_sequences(collector, agent_id: str) -> list[int]:
    return [row[0] for row in collector.query(
        "SELECT sequence FROM batches WHERE agent = (SELECT id FROM agents WHERE agent_id = ?) "
        "ORDER BY sequence", (agent_id,))]


def stored_titles(collector, agent_id: str) -> list[str]:
    return [row[0] for row in collector.query(
        "SELECT title FROM window_spans WHERE agent = (SELECT id FROM agents WHERE agent_id = ?)"
        " ORDER BY start_ms", (agent_id,))]


def run(shipper):
    shipper.start()
    return shipper


def test_backoff_grows_by_half_with_jitter_up_to_five_minutes_and_resets():
    backoff = Backoff(rng=random.Random(7))
    delays = [backoff.next() for _ in range(20)]
    bases = [min(5.0 * 1.5 ** i, 300.0) for i in range(20)]
    for delay, base in zip(delays, bases, strict=True):
        assert 0.5 * base <= delay <= 1.5 * base
    assert max(delays) <= 450 and bases[-1] == 300.0
    assert len({round(d, 6) for d in delays}) == 20          # jittered, not lock-step
    backoff.reset()
    assert 2.5 <= backoff.next() <= 7.5


def test_delivers_every_batch_once_in_order_and_deletes_it_on_ack(tmp_path, collector, agent):
    spool = spool_with(tmp_path / "agent", [[window(3 * b + i) for i in range(3)]
                                            for b in range(30)])
    shipper = run(make_shipper(spool, collector.grpc_address, agent.agent_id, agent.credential,
                               max_in_flight=8))
    try:
        wait_for(lambda: spool.depth().batches == 0, what="all batches acked")
        assert stored_sequences(collector, agent.agent_id) == list(range(1, 31))
        assert stored_titles(collector, agent.agent_id) == [f"span {i}" for i in range(90)]
        # the stream stays open: later batches go out without a reconnect
        spool.add([window(500, "later")])
        spool.seal()
        shipper.wake()
        wait_for(lambda: spool.depth().batches == 0, what="the later batch acked")
        assert stored_titles(collector, agent.agent_id)[-1] == "later"
        assert spool.get("last_ack_sequence") == 31
        assert spool.get("last_error") is None
    finally:
        shipper.stop()


def test_poisoned_batch_is_dead_lettered_and_later_batches_still_flow(tmp_path, collector,
                                                                       agent):
    batches = [[window(b)] for b in range(6)]
    batches[2] = [window(2, title="x" * 5000)]      # over the collector's title limit
    spool = spool_with(tmp_path / "agent", batches)
    shipper = run(make_shipper(spool, collector.grpc_address, agent.agent_id, agent.credential))
    try:
        wait_for(lambda: spool.depth().batches == 0, what="the other batches acked")
        assert stored_sequences(collector, agent.agent_id) == [1, 2, 4, 5, 6]
        [(sequence, events, reason)] = spool.dead_letters()
        assert (sequence, events) == (3, 1)
        assert reason.startswith("INVALID_ARGUMENT") and "title" in reason
        # still flowing afterwards
        spool.add([window(99, "after the poison")])
        spool.seal()
        shipper.wake()
        wait_for(lambda: "after the poison" in stored_titles(collector, agent.agent_id),
                   what="a batch after the dead letter")
    finally:
        shipper.stop()


def test_rejected_credential_stops_sending_says_reenroll_and_resumes_after_enroll(
        tmp_path, collector, agent, caplog):
    spool = spool_with(tmp_path / "agent", [[window(1)], [window(2)]])
    state = {"credential": agent.agent_id + ".wrong-secret", "stamp": 1.0, "attempts": 0}

    def identity():
        state["attempts"] += 1
        return (Connection(address=collector.grpc_address),
                Credential(agent.agent_id, state["credential"], "test"))

    shipper = run(Shipper(spool, identity, HOST, backoff=Backoff(initial=0.05, maximum=0.2),
                          credential_stamp=lambda: state["stamp"]))
    try:
        wait_for(lambda: spool.get("auth_error"), what="the auth error")
        assert "re-enroll" in spool.get("auth_error")
        assert "re-enroll" in caplog.text and "stopped sending" in caplog.text
        attempts = state["attempts"]
        time.sleep(1.0)
        assert state["attempts"] == attempts, "kept retrying with a rejected credential"
        assert stored_sequences(collector, agent.agent_id) == []
        assert spool.depth().batches == 2                     # kept, not given up

        state["credential"] = agent.credential                # `enroll` wrote a new file
        state["stamp"] = 2.0
        wait_for(lambda: spool.depth().batches == 0, timeout=60, what="delivery resumed")
        assert stored_sequences(collector, agent.agent_id) == [1, 2]
        assert spool.get("auth_error") is None
    finally:
        shipper.stop()


def test_a_stop_left_in_the_spool_ends_when_the_collector_takes_the_credential(
        tmp_path, collector, agent):
    """Enrolled again while the agent was not running: the next run delivers, and
    `status` must not keep saying SENDING STOPPED."""
    spool = spool_with(tmp_path / "agent", [[window(1)]])
    spool.put("auth_error", "the collector rejected this agent's credential: re-enroll")
    shipper = run(make_shipper(spool, collector.grpc_address, agent.agent_id, agent.credential))
    try:
        wait_for(lambda: spool.depth().batches == 0, what="delivery")
        assert spool.get("auth_error") is None
    finally:
        shipper.stop()


def test_revoked_agent_is_stopped(tmp_path, collector, agent):
    assert revoke_agent(collector.store, agent.agent_id)
    spool = spool_with(tmp_path / "agent", [[window(1)]])
    shipper = run(make_shipper(spool, collector.grpc_address, agent.agent_id, agent.credential))
    try:
        wait_for(lambda: spool.get("auth_error"), what="the auth error")
        assert "rejected this agent's credential" in spool.get("auth_error")
        assert spool.depth().batches == 1
    finally:
        shipper.stop()


def test_fresh_spool_continues_after_the_collectors_last_sequence(tmp_path, collector, agent):
    # this agent already delivered batches 1..5 (from an earlier, since-lost spool)
    collector.upload(agent, [make_batch(agent.agent_id, s) for s in range(1, 6)])
    spool = spool_with(tmp_path / "agent", [[window(1, "new a")], [window(2, "new b")]])
    shipper = run(make_shipper(spool, collector.grpc_address, agent.agent_id, agent.credential))
    try:
        wait_for(lambda: spool.depth().batches == 0, what="delivery")
        assert stored_sequences(collector, agent.agent_id) == [1, 2, 3, 4, 5, 6, 7]
        assert {"new a", "new b"} <= set(stored_titles(collector, agent.agent_id))
    finally:
        shipper.stop()


SAMPLED_FROM = int(time.time() * 1000) - 900_000


def process_samples(i: int) -> list:
    """One sampling point as the sensor reports it (pages, ticks, 3-decimal %),
    one of them with values the compact form cannot hold (kept plain)."""
    t = SAMPLED_FROM + i * 60_000
    out = [agent_pb2.ProcessSample(time_ms=t, pid=100 + k, name=f"proc{k}", user="alice",
                                   cpu_percent=round(100.0 * 0.07 * k / 60.0004, 3),
                                   rss_bytes=(9000 + 17 * i + k) * 4096,
                                   cpu_seconds=round(0.07 * k, 6), interval_ms=60_000)
           for k in range(10)]
    if i == 3:
        out[4].cpu_seconds = 1 / 3
    return out


def stored_processes(collector, agent_id: str) -> list[tuple]:
    return sorted(collector.process_samples(agent_id))


def test_packed_delivery_stores_the_exact_values_and_a_new_stream_starts_a_new_context(
        tmp_path, collector, agent):
    spool = spool_with(tmp_path / "agent", [[*process_samples(i), window(i)] for i in range(5)])
    expected = sorted((s.time_ms, s.pid, s.name, s.user, s.cpu_percent, s.rss_bytes,
                       s.cpu_seconds, s.interval_ms)
                      for i in range(10) for s in process_samples(i))
    network = ByteCountingProxy(collector.grpc_address)
    shipper = run(make_shipper(spool, network.address, agent.agent_id, agent.credential))
    try:
        wait_for(lambda: spool.depth().batches == 0, what="the first batches acked")
        network.cut()           # the next stream starts a fresh context on both sides
        for i in range(5, 10):
            spool.add([*process_samples(i), window(i)])
            spool.seal()
            shipper.wake()
        wait_for(lambda: spool.depth().batches == 0, what="the later batches acked")
        assert network.connections >= 2
        assert stored_sequences(collector, agent.agent_id) == list(range(1, 11))
        got = stored_processes(collector, agent.agent_id)
        # cpu_percent travels as a 32-bit float either way
        assert [(*row[:4], round(row[4], 3), *row[5:]) for row in got] == \
            [(*row[:4], round(row[4], 3), *row[5:]) for row in expected]
        assert spool.dead_letters() == []
    finally:
        shipper.stop()
        network.close()


def test_flow_control_costs_at_most_one_window_update_per_batch_each_way(tmp_path, collector,
                                                                         agent):
    """Agents send ~700 small batches a day: the HTTP/2 chatter around each one (pings,
    window updates) is most of the bytes on the wire, so it is held to the minimum
    grpc allows: no bandwidth probing pings, one WINDOW_UPDATE per message."""
    spool = spool_with(tmp_path / "agent", [[window(0)]])
    network = ByteCountingProxy(collector.grpc_address, frames=True)
    shipper = run(make_shipper(spool, network.address, agent.agent_id, agent.credential))
    batches = 30
    try:
        for i in range(1, batches):   # one at a time, as every flush interval does
            wait_for(lambda: spool.depth().batches == 0, what=f"batch {i} acked")
            spool.add([window(i, f"title {i}")])
            spool.seal()
            shipper.wake()
        wait_for(lambda: spool.depth().batches == 0, what="the last batch acked")
        assert stored_sequences(collector, agent.agent_id) == list(range(1, batches + 1))
        # what the batches cost, counted before the shipper stops: stopping resets the
        # stream, and a grpc-core server answers 1 reset in 100 with a liveness PING
        # (grpc.http2.ping_on_rst_stream_percent): once per stream, not per batch
        frames = network.frame_totals()
    finally:
        shipper.stop()
        network.close()
    up, down = frames["up"], frames["down"]
    assert "PING" not in down and "PING_ACK" not in up, frames
    # Hello + Upload carry a few fixed frames; each batch may cost one stream update
    # each way, and the connection window is topped up only rarely
    assert up.get("WINDOW_UPDATE", [0])[0] <= batches + 5, frames
    assert down.get("WINDOW_UPDATE", [0])[0] <= batches + 5, frames


def test_revocation_ends_an_open_stream_and_the_shipper_says_reenroll(tmp_path, collector,
                                                                       agent):
    spool = spool_with(tmp_path / "agent", [[window(1)]])
    shipper = run(make_shipper(spool, collector.grpc_address, agent.agent_id, agent.credential))
    try:
        wait_for(lambda: spool.depth().batches == 0, what="delivery before revoking")
        assert revoke_agent(collector.store, agent.agent_id)   # in this process: at once
        spool.add([window(2, "after revocation")])
        spool.seal()
        shipper.wake()
        wait_for(lambda: spool.get("auth_error"), what="the auth error")
        assert "revoked or replaced while the upload stream was open" in spool.get("auth_error")
        assert "re-enroll" in spool.get("auth_error")
        assert stored_sequences(collector, agent.agent_id) == [1]
        assert spool.depth().batches == 1
    finally:
        shipper.stop()


def test_stop_while_idle_is_prompt(tmp_path, collector, agent):
    spool = Spool.open(tmp_path / "agent")
    shipper = run(make_shipper(spool, collector.grpc_address, agent.agent_id, agent.credential))
    time.sleep(0.5)
    started = time.monotonic()
    shipper.stop(timeout=10)
    assert not shipper._thread.is_alive()
    assert time.monotonic() - started < 10


# -- a scripted collector for the rarer answers ------------------------------------------


class Scripted(agent_pb2_grpc.AgentServiceServicer):
    """Stores batches by sequence like the real one; ``script`` says how each
    Upload call (by number) misbehaves."""

    def __init__(self, script: dict[int, tuple]):
        self.script = script
        self.calls = 0
        self.stored: dict[int, agent_pb2.Batch] = {}
        self.call_times: list[float] = []
        self.lock = threading.Lock()

    def Hello(self, request, context):
        return agent_pb2.HelloResponse(agent_id="ag-scripted", last_sequence=0)

    def Upload(self, request_iterator, context):
        with self.lock:
            self.calls += 1
            call = self.calls
            self.call_times.append(time.monotonic())
        action = self.script.get(call)
        for batch in request_iterator:
            if action and action[0] == "abort":
                _, code, trailing = action
                context.set_trailing_metadata(trailing)
                context.abort(code, f"scripted {code.name}")
            if action and action[0] == "silent":
                continue          # read everything, ack nothing
            self.stored.setdefault(batch.sequence, batch)
            yield agent_pb2.Ack(sequence=batch.sequence)


class Unpacking(Scripted):
    """A collector that accepts packed batches with the given ``extensions`` (none:
    one from before them) and keeps each batch as it came out of the packing,
    before what it refers to in the stream is filled in (``inner``)."""

    def __init__(self, extensions: list[str]):
        super().__init__({})
        self.extensions = extensions
        self.inner: list[agent_pb2.Batch] = []

    def Hello(self, request, context):
        return agent_pb2.HelloResponse(agent_id="ag-scripted", batch_packing=PACKING,
                                       packing_extensions=self.extensions)

    def Upload(self, request_iterator, context):
        inflater, deltas = Inflater(), StreamDeltas()
        for message in request_iterator:
            batch = agent_pb2.Batch.FromString(inflater.unpack(message.packed, 1 << 20))
            self.inner.append(agent_pb2.Batch.FromString(batch.SerializeToString()))
            deltas.decode(batch)
            batch.sequence = message.sequence
            self.stored.setdefault(batch.sequence, batch)
            yield agent_pb2.Ack(sequence=batch.sequence)


def cut_parts(count: int) -> list[agent_pb2.WindowSpan]:
    """One window span cut at flushes: the first part and ``count - 1`` continued ones."""
    parts = [window(0, "notes.py - code")]
    for _ in range(count - 1):
        part = agent_pb2.WindowSpan()
        part.CopyFrom(parts[-1])
        part.start_ms += part.duration_ms
        part.continued = True
        parts.append(part)
    return parts


@pytest.fixture
def scripted():
    servers = []

    def start(script, servicer: Scripted | None = None):
        servicer = servicer or Scripted(script)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return servicer, f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(0)


def test_a_collector_that_does_not_offer_packing_gets_plain_gzip_batches(tmp_path, scripted):
    servicer, address = scripted({})
    spool = spool_with(tmp_path / "agent", [[window(1, "one")], [window(2, "two")]])
    shipper = run(make_shipper(spool, address, "ag-scripted", "ag-scripted.x"))
    try:
        wait_for(lambda: spool.depth().batches == 0, what="delivery")
        assert [(b.agent_id, b.windows[0].title, b.packed) for _, b in
                sorted(servicer.stored.items())] == [("ag-scripted", "one", b""),
                                                     ("ag-scripted", "two", b"")]
    finally:
        shipper.stop()


def test_resource_exhausted_with_retry_after_waits_as_told_then_resends(tmp_path, scripted):
    servicer, address = scripted({1: ("abort", grpc.StatusCode.RESOURCE_EXHAUSTED,
                                      (("retry-after-ms", "700"),))})
    spool = spool_with(tmp_path / "agent", [[window(1)], [window(2)]])
    shipper = run(make_shipper(spool, address, "ag-scripted", "ag-scripted.x"))
    try:
        wait_for(lambda: spool.depth().batches == 0, what="delivery after the retry-after")
        assert sorted(servicer.stored) == [1, 2]
        assert servicer.call_times[1] - servicer.call_times[0] >= 0.65
        assert spool.dead_letters() == []
    finally:
        shipper.stop()


def test_resource_exhausted_without_retry_after_is_dead_lettered(tmp_path, scripted):
    servicer, address = scripted({1: ("abort", grpc.StatusCode.RESOURCE_EXHAUSTED,
                                      (("worklens-rejected-sequence", "1"),))})
    spool = spool_with(tmp_path / "agent", [[window(1)], [window(2)]])
    shipper = run(make_shipper(spool, address, "ag-scripted", "ag-scripted.x"))
    try:
        wait_for(lambda: spool.depth().batches == 0, what="the rest delivered")
        assert sorted(servicer.stored) == [2]
        assert [letter[0] for letter in spool.dead_letters()] == [1]
    finally:
        shipper.stop()


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED,
                                  grpc.StatusCode.DATA_LOSS, grpc.StatusCode.OUT_OF_RANGE,
                                  grpc.StatusCode.INTERNAL])
def test_retryable_failures_are_retried_with_backoff_and_nothing_is_lost(tmp_path, scripted,
                                                                         code):
    servicer, address = scripted({1: ("abort", code, ()), 2: ("abort", code, ())})
    spool = spool_with(tmp_path / "agent", [[window(1)], [window(2)], [window(3)]])
    shipper = run(make_shipper(spool, address, "ag-scripted", "ag-scripted.x"))
    try:
        wait_for(lambda: spool.depth().batches == 0, what="delivery after retries")
        assert sorted(servicer.stored) == [1, 2, 3]
        assert servicer.calls == 3
        assert spool.dead_letters() == []
        assert spool.get("last_error") is None      # cleared by the first ack
    finally:
        shipper.stop()


def test_collector_that_stops_acking_is_abandoned_after_ack_timeout(tmp_path, scripted):
    servicer, address = scripted({1: ("silent",)})
    spool = spool_with(tmp_path / "agent", [[window(1)], [window(2)]])
    shipper = run(make_shipper(spool, address, "ag-scripted", "ag-scripted.x",
                               ack_timeout=0.5))
    try:
        wait_for(lambda: spool.depth().batches == 0, what="delivery on a second stream")
        assert servicer.calls == 2 and sorted(servicer.stored) == [1, 2]
    finally:
        shipper.stop()


@pytest.mark.parametrize("extensions", [[], [SAME_WINDOW]], ids=["older-collector", "same-window"])
def test_continued_parts_go_without_their_window_only_to_a_collector_that_says_so(
        tmp_path, scripted, extensions):
    servicer, address = scripted({}, Unpacking(extensions))
    parts = cut_parts(4)
    spool = spool_with(tmp_path / "agent", [parts[:1], parts[1:3], parts[3:]])
    shipper = run(make_shipper(spool, address, "ag-scripted", "ag-scripted.x"))
    try:
        wait_for(lambda: spool.depth().batches == 0, what="delivery")
    finally:
        shipper.stop()
    assert [list(batch.windows) for _, batch in sorted(servicer.stored.items())] == \
        [parts[:1], parts[1:3], parts[3:]]
    sent = [span for batch in servicer.inner for span in batch.windows]
    assert [(span.same_window, span.app) for span in sent] == (
        [(False, "app0")] + [(True, "")] * 3 if extensions else [(False, "app0")] * 4)


def test_continued_parts_reach_the_real_collector_whole(tmp_path, collector, agent):
    parts = cut_parts(5)
    spool = spool_with(tmp_path / "agent", [parts[:2], parts[2:4], parts[4:]])
    shipper = run(make_shipper(spool, collector.grpc_address, agent.agent_id, agent.credential))
    try:
        wait_for(lambda: spool.depth().batches == 0, what="delivery")
    finally:
        shipper.stop()
    assert collector.query(
        "SELECT start_ms, duration_ms, app, title, pid, exe, continued FROM window_spans "
        "WHERE agent = (SELECT id FROM agents WHERE agent_id = ?) ORDER BY start_ms",
        (agent.agent_id,)) == [(p.start_ms, p.duration_ms, p.app, p.title, p.pid, p.exe,
                                int(p.continued)) for p in parts]
