"""Enroll, Hello and Upload doing their job, against a real collector over a socket."""

from __future__ import annotations

import concurrent.futures
import hashlib
import threading
import time

import grpc
import pytest
from collector_harness import make_batch
from worklens.v1 import agent_pb2


def test_enroll_gives_an_agent_id_and_a_credential_stored_only_hashed(collector):
    agent = collector.enroll_agent(hostname="ws-42")
    assert agent.agent_id.startswith("ag-")
    assert agent.credential.startswith(agent.agent_id + ".")
    (row,) = collector.query("SELECT agent_id, hostname, credential_hash FROM agents")
    secret = agent.credential.split(".", 1)[1]
    assert row[:2] == (agent.agent_id, "ws-42")
    assert row[2] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.encode() not in collector.db_path.read_bytes()


def test_reenroll_same_install_keeps_the_agent_id_and_revokes_the_old_credential(collector):
    secret = collector.create_token("enroll")
    first = collector.enroll_agent(secret, install_id="install-1")
    second = collector.enroll_agent(secret, install_id="install-1")
    other = collector.enroll_agent(secret, install_id="install-2")
    assert second.agent_id == first.agent_id != other.agent_id
    assert second.credential != first.credential
    with pytest.raises(grpc.RpcError) as error:
        collector.upload(first, [make_batch(first.agent_id, 1)])
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert collector.upload(second, [make_batch(second.agent_id, 1)])[0].sequence == 1


def test_enroll_rejects_a_missing_install_id(collector):
    with collector.channel() as channel, pytest.raises(grpc.RpcError) as error:
        collector.stub(channel).Enroll(agent_pb2.EnrollRequest(
            secret=collector.create_token("enroll")), timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "install_id" in error.value.details()


def test_hello_reports_identity_time_and_last_stored_sequence(collector):
    agent = collector.enroll_agent()
    collector.upload(agent, [make_batch(agent.agent_id, s) for s in (1, 2, 3)])
    with collector.channel() as channel:
        reply = collector.stub(channel).Hello(agent_pb2.HelloRequest(), metadata=agent.metadata,
                                              timeout=30)
    assert reply.agent_id == agent.agent_id
    assert reply.last_sequence == 3
    from collector_harness import now_ms
    assert abs(reply.server_time_ms - now_ms()) < 60_000


def test_records_are_stored_under_the_credentials_agent_with_the_batch_user(collector):
    agent = collector.enroll_agent()
    batch = make_batch(agent.agent_id, 1, user="bob", dropped_events=7)
    collector.upload(agent, [batch])
    rows = collector.query(
        "SELECT a.agent_id, w.start_ms, w.duration_ms, w.app, w.title, w.pid, w.exe, "
        "w.excluded, w.username FROM window_spans w JOIN agents a ON a.id = w.agent "
        "ORDER BY w.start_ms")
    expected = [(agent.agent_id, w.start_ms, w.duration_ms, w.app, w.title, w.pid, w.exe, 0,
                 "bob") for w in batch.windows]
    assert rows == expected
    assert collector.query("SELECT state, key_presses, username FROM activity_spans "
                           "ORDER BY start_ms LIMIT 1") == [(1, 40, "bob")]
    (proc,) = [s[2:] for s in collector.process_samples() if s[1] == 1000]
    assert proc == ("proc0", "bob", 12.5, 200 << 20, 7.5, 60_000)
    assert collector.query("SELECT mem_total_bytes, cpu_count FROM system_totals") == \
        [(16 << 30, 8)]
    assert collector.query("SELECT events, dropped_events FROM batches") == [(9, 7)]


def test_agent_row_tracks_last_sequence_host_facts_and_dropped_total(collector):
    agent = collector.enroll_agent()
    collector.upload(agent, [make_batch(agent.agent_id, 1, dropped_events=5, user="carol"),
                             make_batch(agent.agent_id, 2, dropped_events=3, user="dave")])
    collector.upload(agent, [make_batch(agent.agent_id, 1, dropped_events=5)])  # duplicate
    assert collector.query("SELECT last_sequence, dropped_events, username, os_version "
                           "FROM agents") == [(2, 8, "dave", "6.1")]


def test_many_concurrent_streams_all_get_their_acks(collector):
    agents = [collector.enroll_agent(hostname=f"ws-{i}") for i in range(12)]

    def stream(agent):
        return collector.upload(agent, [make_batch(agent.agent_id, s) for s in range(1, 21)])

    with concurrent.futures.ThreadPoolExecutor(len(agents)) as pool:
        results = list(pool.map(stream, agents))
    for acks in results:
        assert [(a.sequence, a.duplicate) for a in acks] == [(s, False) for s in range(1, 21)]
    assert collector.count("batches") == 12 * 20
    assert collector.count("window_spans") == 12 * 20 * 3


def test_an_empty_batch_is_acked_and_recorded(collector):
    agent = collector.enroll_agent()
    acks = collector.upload(agent, [agent_pb2.Batch(agent_id=agent.agent_id, sequence=1)])
    assert [(a.sequence, a.duplicate) for a in acks] == [(1, False)]
    assert collector.query("SELECT events FROM batches") == [(0,)]


def test_reenrolling_a_revoked_agent_is_permission_denied(collector):
    from worklens.collector.access.enrollment import revoke_agent
    secret = collector.create_token("enroll")
    agent = collector.enroll_agent(secret, install_id="stolen-laptop")
    assert revoke_agent(collector.store, agent.agent_id)
    with pytest.raises(grpc.RpcError) as error:
        collector.enroll_agent(secret, install_id="stolen-laptop")
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "revoked" in error.value.details()


def test_metrics_count_stored_duplicate_and_rejected_batches(collector):
    from prometheus_client import REGISTRY

    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (value("worklens_batches_total", result="stored"),
              value("worklens_batches_total", result="duplicate"),
              value("worklens_batches_total", result="rejected"),
              value("worklens_events_total"))
    agent = collector.enroll_agent()
    collector.upload(agent, [make_batch(agent.agent_id, 1), make_batch(agent.agent_id, 1)])
    bad = make_batch(agent.agent_id, 2)
    bad.windows[0].duration_ms = -5
    with pytest.raises(grpc.RpcError):
        collector.upload(agent, [bad])
    after = (value("worklens_batches_total", result="stored"),
             value("worklens_batches_total", result="duplicate"),
             value("worklens_batches_total", result="rejected"),
             value("worklens_events_total"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 9]
    assert value("worklens_rejects_total", reason="invalid") >= 1


def test_an_overloaded_store_answers_resource_exhausted_with_retry_after(collector,
                                                                        monkeypatch):
    from worklens.collector.store import sqlite as sqlite_store
    monkeypatch.setattr(sqlite_store, "MAX_PENDING_EVENTS", 10)
    first, second = collector.enroll_agent(), collector.enroll_agent()
    gate = threading.Event()
    collector.store.submit(lambda conn: gate.wait(60))  # the writer is stuck on a long write
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(collector.upload, first, [make_batch(first.agent_id, 1)])
        deadline = time.monotonic() + 60
        while collector.store._pending_events == 0:  # wait until it is queued
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(grpc.RpcError) as error:
            collector.upload(second, [make_batch(second.agent_id, 1)])
        gate.set()
        assert [a.sequence for a in pending.result(60)] == [1]
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert int(dict(error.value.trailing_metadata())["retry-after-ms"]) > 0
    assert collector.count("batches", second.agent_id) == 0
    assert [a.sequence for a in collector.upload(second, [make_batch(second.agent_id, 1)])] == [1]


def test_an_accepted_upload_stream_says_so_before_any_batch(collector):
    """The collector answers an authenticated Upload with its initial metadata at once,
    so a client knows the stream was accepted before it sends (an unknown credential
    gets UNAUTHENTICATED instead)."""
    agent = collector.enroll_agent()
    outgoing: list = []    # nothing sent: the iterator blocks until the test ends
    stop = threading.Event()

    def requests():
        stop.wait(60)
        yield from outgoing

    with collector.channel() as channel:
        call = collector.stub(channel).Upload(requests(), metadata=agent.metadata, timeout=20)
        try:
            call.initial_metadata()     # returns at the end of the call if never sent
            assert call.is_active(), "no initial metadata before the call ended"
        finally:
            stop.set()
            call.cancel()
        bad = collector.stub(channel).Upload(requests(), timeout=20,
                                            metadata=(("authorization", "Bearer ag-x.y"),))
        with pytest.raises(grpc.RpcError) as error:
            list(bad)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
