"""Issue 2 "Bad input": each case against a real collector over a socket. Each
asserts the status a program gets, that nothing of the bad batch was stored,
and that another agent's stream, open the whole time, keeps being served."""

from __future__ import annotations

import queue
import time

import grpc
import pytest
from collector_harness import AgentCredentials, collector_config, make_batch, now_ms
from ingest_support import NOTHING, Bystander, rejected_sequence, stored, upload_error
from worklens.v1 import agent_pb2


def test_malformed_protobuf_bytes_are_invalid_argument(collector, bystander):
    agent = collector.enroll_agent()
    acks, error = upload_error(collector, agent, [b"\x0a\xff\xff\xff\x0f garbage"], raw=True)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed" in error.details()
    assert acks == [] and stored(collector, agent) == NOTHING


def test_malformed_enroll_request_is_invalid_argument(collector, bystander):
    with collector.channel() as channel:
        enroll = channel.unary_unary("/worklens.v1.AgentService/Enroll",
                                     request_serializer=None,
                                     response_deserializer=agent_pb2.EnrollResponse.FromString)
        with pytest.raises(grpc.RpcError) as info:
            enroll(b"\x12\x05ab", timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert collector.count("agents") == 1  # only the bystander


@pytest.mark.parametrize("mutate, words", [
    (lambda b: setattr(b.windows[0], "duration_ms", -1), "duration_ms must be >= 0"),
    (lambda b: setattr(b.activity[1], "duration_ms", 8 * 86_400_000), "duration_ms must be <="),
    (lambda b: setattr(b.windows[2], "start_ms", now_ms() + 3_600_000), "in the future"),
    (lambda b: setattr(b.processes[0], "time_ms", now_ms() - 500 * 86_400_000),
     "older than the retention window"),
    (lambda b: setattr(b.windows[0], "title", "x" * 2049), "title is 2049 characters"),
    (lambda b: setattr(b.windows[0], "app", "a" * 257), "app is 257 characters"),
    (lambda b: setattr(b.activity[0], "state", agent_pb2.ACTIVITY_STATE_UNSPECIFIED),
     "activity.state"),
    (lambda b: setattr(b.activity[0], "state", 9), "activity.state"),
    (lambda b: setattr(b.processes[0], "cpu_percent", float("nan")), "finite"),
    (lambda b: setattr(b.host, "hostname", "h" * 300), "host.hostname"),
    (lambda b: setattr(b, "sequence", 0), "sequence must be between 1"),
], ids=["negative-duration", "absurd-duration", "future", "too-old", "oversize-title",
        "oversize-app", "unspecified-state", "unknown-state", "nan-cpu", "oversize-hostname",
        "sequence-zero"])
def test_invalid_batch_is_rejected_whole(collector, bystander, mutate, words):
    agent = collector.enroll_agent()
    bad = make_batch(agent.agent_id, 3)
    mutate(bad)
    good = [make_batch(agent.agent_id, 1), make_batch(agent.agent_id, 2)]
    acks, error = upload_error(collector, agent, [*good, bad, make_batch(agent.agent_id, 4)])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in error.details()
    # The batches before it were stored and acked; nothing of it or after it.
    assert [a.sequence for a in acks] == [1, 2]
    assert rejected_sequence(error) == str(bad.sequence)
    assert stored(collector, agent) == (2, 6, 6, 4, 2)


def test_limits_at_the_edge_are_accepted(collector):
    agent = collector.enroll_agent()
    batch = make_batch(agent.agent_id, 1, title="t" * 2048)
    batch.windows[0].duration_ms = 7 * 86_400_000
    batch.windows[1].start_ms = now_ms() + 60_000  # within the default 5 minutes of skew
    assert collector.upload(agent, [batch])[0].sequence == 1
    assert collector.query("SELECT max(length(title)) FROM window_spans") == [(2048,)]


def test_too_many_events_is_invalid_argument(collector_factory):
    small = collector_factory(collector_config(grpc={"max_events_per_batch": 20}))
    other = Bystander(small)
    agent = small.enroll_agent()
    batch = make_batch(agent.agent_id, 1, windows=10, activity=10, processes=1, system=0)
    acks, error = upload_error(small, agent, [batch])
    assert acks == []
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "too many events in one batch: 21 > 20" in error.details()
    assert rejected_sequence(error) == "1"
    assert stored(small, agent) == NOTHING
    other.roundtrip()
    other.close()


def test_message_over_size_limit_is_resource_exhausted(collector_factory):
    small = collector_factory(collector_config(grpc={"max_message_mb": 1}))
    other = Bystander(small)
    agent = small.enroll_agent()
    batch = make_batch(agent.agent_id, 1, windows=700, title="w" * 2000)
    assert batch.ByteSize() > 1024 * 1024
    acks, error = upload_error(small, agent, [batch])
    assert acks == []
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stored(small, agent) == NOTHING
    other.roundtrip()
    other.close()


@pytest.mark.parametrize("metadata", [
    (), (("authorization", "Bearer ag-nosuchagent.c2VjcmV0"),), (("authorization", "Basic x"),),
], ids=["missing", "unknown-agent", "not-bearer"])
def test_missing_or_unknown_credential_is_unauthenticated(collector, bystander, metadata):
    fake = AgentCredentials("ag-nosuchagent", "", "x")
    with collector.channel() as channel:
        stub = collector.stub(channel)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Upload(iter([make_batch(fake.agent_id, 1)]), metadata=metadata,
                             timeout=30))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as info:
            stub.Hello(agent_pb2.HelloRequest(), metadata=metadata, timeout=30)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert collector.count("batches") == 1  # the bystander's


def test_wrong_secret_for_a_real_agent_is_unauthenticated(collector, bystander):
    agent = collector.enroll_agent()
    forged = AgentCredentials(agent.agent_id, agent.agent_id + ".AAAAguessed", agent.install_id)
    acks, error = upload_error(collector, forged, [make_batch(agent.agent_id, 1)])
    assert acks == []
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert stored(collector, agent) == NOTHING


def test_revoked_agent_is_unauthenticated(collector, bystander):
    from worklens.collector.access.enrollment import revoke_agent
    agent = collector.enroll_agent()
    assert collector.upload(agent, [make_batch(agent.agent_id, 1)])[0].sequence == 1
    assert revoke_agent(collector.store, agent.agent_id)
    acks, error = upload_error(collector, agent, [make_batch(agent.agent_id, 2)])
    assert acks == []
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert collector.count("batches", agent.agent_id) == 1


def test_revoked_expired_or_wrong_role_enrollment_secret_is_unauthenticated(collector,
                                                                            bystander):
    from worklens.collector.access.tokens import create_token, revoke_token
    info, revoked = create_token(collector.store, "enroll", "old")
    assert revoke_token(collector.store, info.id)
    _, expired = create_token(collector.store, "enroll", "short", expires_s=0.001)
    viewer = collector.create_token("viewer")
    time.sleep(0.01)
    for secret in (revoked, expired, viewer, "wl_nosuch_secret", ""):
        with pytest.raises(grpc.RpcError) as error:
            collector.enroll_agent(secret=secret or "x")
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED, secret
    assert collector.count("agents") == 1


def test_batch_with_another_agents_id_is_permission_denied(collector, bystander):
    mallory = collector.enroll_agent(hostname="mallory")
    victim = collector.enroll_agent(hostname="victim")
    acks, error = upload_error(collector, mallory, [make_batch(victim.agent_id, 1)])
    assert acks == []
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert rejected_sequence(error) == "1"
    assert stored(collector, mallory) == NOTHING and stored(collector, victim) == NOTHING


def test_same_batch_twice_is_stored_once_and_acked_as_duplicate(collector, bystander):
    agent = collector.enroll_agent()
    first = make_batch(agent.agent_id, 1)
    acks = collector.upload(agent, [first, make_batch(agent.agent_id, 2), first])
    assert [(a.sequence, a.duplicate) for a in acks] == [(1, False), (2, False), (1, True)]
    # ... and on a later stream (the agent resends after a lost ack)
    again = collector.upload(agent, [first])
    assert [(a.sequence, a.duplicate) for a in again] == [(1, True)]
    assert stored(collector, agent) == (2, 6, 6, 4, 2)


def test_client_disconnecting_mid_stream_loses_nothing_acked(collector, bystander):
    agent = collector.enroll_agent()
    channel = collector.channel()
    out: queue.Queue = queue.Queue()
    call = collector.stub(channel).Upload(iter(out.get, None), metadata=agent.metadata)
    out.put(make_batch(agent.agent_id, 1))
    out.put(make_batch(agent.agent_id, 2))
    assert next(call).sequence == 1
    assert next(call).sequence == 2
    call.cancel()  # gone without closing the stream
    channel.close()
    bystander.roundtrip()
    assert stored(collector, agent) == (2, 6, 6, 4, 2)
    # The agent comes back and resends what it is unsure of.
    acks = collector.upload(agent, [make_batch(agent.agent_id, 2), make_batch(agent.agent_id, 3)])
    assert [(a.sequence, a.duplicate) for a in acks] == [(2, True), (3, False)]


def test_a_failure_of_the_collectors_own_code_is_internal_and_logged_not_a_silent_hangup(
        collector, bystander, monkeypatch, caplog):
    """A bug met while handling one batch must not look like the agent hanging up
    (the agent would reconnect and resend forever with nothing in the log)."""
    import worklens.collector.ingest.service as ingest

    agent = collector.enroll_agent()

    def broken(*args):
        raise RuntimeError("a bug in the collector")

    monkeypatch.setattr(ingest, "extract", broken)
    acks, error = upload_error(collector, agent, [make_batch(agent.agent_id, 1)])
    assert error.code() == grpc.StatusCode.INTERNAL and "retry" in error.details()
    assert acks == [] and stored(collector, agent) == NOTHING
    assert any(r.exc_info and "a bug in the collector" in str(r.exc_info[1])
               for r in caplog.records if "could not handle a batch" in r.getMessage())
    monkeypatch.undo()
    assert [a.sequence for a in collector.upload(agent, [make_batch(agent.agent_id, 1)])] == [1]
