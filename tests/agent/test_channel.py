"""The agent's channel: TLS with a pinned CA, mutual TLS, plain text only to
loopback, gzip on the wire, keepalive the collector tolerates — against real
collectors on free ports with certificates made by tests/certs.py."""

from __future__ import annotations

import grpc
import pytest
from byteproxy import ByteCountingProxy
from certs import make_pki
from collector_harness import InProcessCollector, collector_config
from delivery_support import HOST, window
from worklens.agent import channel
from worklens.agent.credential import Connection
from worklens.agent.enroll import enroll
from worklens.common.cli import UserError
from worklens.v1 import agent_pb2, agent_pb2_grpc


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def start(tmp_path):
    started = []

    def start_collector(**grpc_section) -> InProcessCollector:
        cfg = collector_config(grpc=grpc_section) if grpc_section else None
        instance = InProcessCollector(tmp_path / f"collector-{len(started)}", cfg)
        started.append(instance)
        return instance

    yield start_collector
    for instance in started:
        instance.stop()


def hello(conn: Connection, credential: str) -> agent_pb2.HelloResponse:
    with channel.open_channel(conn, credential) as ch:
        return agent_pb2_grpc.AgentServiceStub(ch).Hello(agent_pb2.HelloRequest(host=HOST),
                                                         timeout=20)


def failure(conn: Connection, credential: str = "ag-x.y") -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        hello(conn, credential)
    return caught.value


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.3.4.5", True),
                                           ("::1", True), ("localhost", True),
                                           ("LOCALHOST", True), ("10.0.0.1", False),
                                           ("collector.example.com", False),
                                           ("localhost.evil.com", False)])
def test_only_addresses_that_cannot_leave_the_machine_count_as_loopback(host, loopback):
    assert channel.is_loopback(host) is loopback


@pytest.mark.parametrize("address", ["collector", "collector:", ":50051", "host:99999",
                                     "host:port"])
def test_bad_addresses_get_one_line_errors(address):
    with pytest.raises(UserError, match="expected HOST:PORT"):
        channel.open_channel(Connection(address=address))


def test_plain_text_to_another_machine_is_refused_unless_insecure():
    with pytest.raises(UserError) as caught:
        channel.open_channel(Connection(address="collector.example.com:50051"))
    message = str(caught.value)
    assert "refusing plain text" in message and "ca_cert" in message and "\n" not in message
    channel.open_channel(Connection(address="collector.example.com:50051",
                                    insecure=True)).close()
    channel.open_channel(Connection(address="[::1]:50051")).close()


def test_missing_tls_files_are_named(tmp_path):
    with pytest.raises(UserError, match=r"cannot read ca_cert .*nope\.pem"):
        channel.open_channel(Connection(address="10.0.0.1:1", ca_cert=str(tmp_path / "nope.pem")))
    with pytest.raises(UserError, match=r"both .*client_cert and client_key"):
        channel.open_channel(Connection(address="10.0.0.1:1", ca_cert=str(tmp_path / "x"),
                                        client_cert=str(tmp_path / "c.pem")))


def test_tls_with_the_pinned_ca_enrolls_and_authenticates(tmp_path, pki, start):
    col = start(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    conn = Connection(address=col.grpc_address, ca_cert=str(pki.ca_cert))
    cred = enroll(conn, col.create_token("enroll"), tmp_path / "agent")
    assert hello(conn, cred.credential).agent_id == cred.agent_id


def test_tls_with_a_wrong_ca_is_refused_with_a_clear_message(pki, start):
    col = start(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    conn = Connection(address=col.grpc_address, ca_cert=str(pki.other_ca_cert))
    err = failure(conn)
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    message = channel.explain(err, conn)
    assert "not signed by the CA in ca_cert" in message and str(pki.other_ca_cert) in message


def test_plain_text_agent_against_a_tls_collector_is_explained(pki, start):
    col = start(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    conn = Connection(address=col.grpc_address)
    message = channel.explain(failure(conn), conn)
    assert "closed the connection" in message and "set [collector] ca_cert" in message


def test_mtls_without_a_client_certificate_is_refused_with_a_clear_message(tmp_path, pki,
                                                                           start):
    col = start(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key),
                client_ca=str(pki.ca_cert))
    conn = Connection(address=col.grpc_address, ca_cert=str(pki.ca_cert))
    err = failure(conn)
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    message = channel.explain(err, conn)
    assert "requires a client certificate" in message and "client_cert" in message

    stranger = Connection(address=col.grpc_address, ca_cert=str(pki.ca_cert),
                          client_cert=str(pki.other_client_cert),
                          client_key=str(pki.other_client_key))
    err = failure(stranger)
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "did not accept the client certificate" in channel.explain(err, stranger)

    mutual = Connection(address=col.grpc_address, ca_cert=str(pki.ca_cert),
                        client_cert=str(pki.client_cert), client_key=str(pki.client_key))
    cred = enroll(mutual, col.create_token("enroll"), tmp_path / "agent")
    assert hello(mutual, cred.credential).agent_id == cred.agent_id


def test_batches_are_gzip_compressed_on_the_wire(start):
    col = start()
    agent = col.enroll_agent()
    proxy = ByteCountingProxy(col.grpc_address)
    try:
        batch = agent_pb2.Batch(agent_id=agent.agent_id, sequence=1, host=HOST)
        for i in range(2000):
            batch.windows.append(window(i, title="Quarterly report.xlsx - LibreOffice Calc"))
        raw = batch.ByteSize()
        conn = Connection(address=proxy.address)
        with channel.open_channel(conn, agent.credential) as ch:
            acks = list(agent_pb2_grpc.AgentServiceStub(ch).Upload(iter([batch]), timeout=30))
        assert [a.sequence for a in acks] == [1]
        assert raw > 100_000
        assert proxy.sent < raw / 4, (proxy.sent, raw)
    finally:
        proxy.close()


def test_a_collector_that_is_not_running_is_explained():
    import socket
    with socket.socket() as sock:      # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        conn = Connection(address=f"127.0.0.1:{sock.getsockname()[1]}")
        message = channel.explain(failure(conn), conn)
    assert message == f"cannot reach the collector at {conn.address}: nothing answers there " \
                      "(is it running?)"


def test_keepalive_is_within_what_the_collector_tolerates():
    from worklens.collector import server
    agent = dict(channel.channel_options())
    collector = dict(server.server_options(server.CollectorConfig()))
    # an agent pinging faster than the collector tolerates would be cut off (GOAWAY)
    assert agent["grpc.keepalive_time_ms"] >= \
        collector["grpc.http2.min_recv_ping_interval_without_data_ms"]
    assert agent["grpc.keepalive_permit_without_calls"] == \
        collector["grpc.keepalive_permit_without_calls"] == 1
