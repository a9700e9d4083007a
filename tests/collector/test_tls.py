"""TLS and mutual TLS on the collector's listeners, with a real PKI made by
tests/certs.py and real handshakes over sockets."""

from __future__ import annotations

import grpc
import pytest
import requests
from certs import make_pki
from collector_harness import CollectorProcess, collector_config, make_batch


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def credentials(ca, cert=None, key=None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None)


def refused(instance, creds) -> grpc.RpcError:
    instance.channel_credentials = creds
    with pytest.raises(grpc.RpcError) as error:
        instance.enroll_agent()
    return error.value


@pytest.fixture
def tls_collector(collector_factory, pki):
    return collector_factory(collector_config(grpc={"tls_cert": str(pki.server_cert),
                                                    "tls_key": str(pki.server_key)}))


@pytest.fixture
def mtls_collector(collector_factory, pki):
    return collector_factory(collector_config(grpc={"tls_cert": str(pki.server_cert),
                                                    "tls_key": str(pki.server_key),
                                                    "client_ca": str(pki.ca_cert)}))


def test_tls_with_the_right_ca_enrolls_and_uploads(tls_collector, pki):
    tls_collector.channel_credentials = credentials(pki.ca_cert)
    agent = tls_collector.enroll_agent()
    assert tls_collector.upload(agent, [make_batch(agent.agent_id, 1)])[0].sequence == 1


def test_tls_with_a_wrong_ca_is_refused(tls_collector, pki):
    error = refused(tls_collector, credentials(pki.other_ca_cert))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert tls_collector.count("agents") == 0


def test_plain_text_client_cannot_talk_to_a_tls_collector(tls_collector):
    error = refused(tls_collector, None)
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_with_a_client_certificate_works(mtls_collector, pki):
    mtls_collector.channel_credentials = credentials(pki.ca_cert, pki.client_cert,
                                                     pki.client_key)
    agent = mtls_collector.enroll_agent()
    assert mtls_collector.upload(agent, [make_batch(agent.agent_id, 1)])[0].sequence == 1


def test_mtls_without_a_client_certificate_is_refused(mtls_collector, pki):
    error = refused(mtls_collector, credentials(pki.ca_cert))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert mtls_collector.count("agents") == 0


def test_mtls_with_a_certificate_from_another_ca_is_refused(mtls_collector, pki):
    error = refused(mtls_collector, credentials(pki.ca_cert, pki.other_client_cert,
                                                pki.other_client_key))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_serve_with_tls_on_both_ports(tmp_path, pki, collector_proc_factory):
    config = tmp_path / "collector.toml"
    config.write_text(f"""
[grpc]
tls_cert = "{pki.server_cert}"
tls_key = "{pki.server_key}"
client_ca = "{pki.ca_cert}"

[http]
tls_cert = "{pki.server_cert}"
tls_key = "{pki.server_key}"
""")
    proc: CollectorProcess = collector_proc_factory(config_path=config)
    proc.start()
    assert "(TLS, client certificates required)" in proc.output
    assert proc.http_url.startswith("https://127.0.0.1:")
    reply = requests.get(f"{proc.http_url}/healthz", verify=str(pki.ca_cert), timeout=30)
    assert reply.status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{proc.http_url}/healthz", verify=str(pki.other_ca_cert), timeout=30)
    proc.channel_credentials = credentials(pki.ca_cert, pki.client_cert, pki.client_key)
    assert proc.enroll_agent().agent_id.startswith("ag-")
    assert proc.terminate() == 0


@pytest.mark.parametrize("toml, words", [
    ('[grpc]\ntls_cert = "{cert}"\n', "tls_cert and tls_key must be set together"),
    ('[grpc]\nclient_ca = "{ca}"\n', "client_ca needs tls_cert and tls_key"),
    ('[grpc]\ntls_cert = "{cert}"\ntls_key = "/nonexistent.key"\n', "cannot read"),
    ('[http]\ntls_cert = "{ca}"\ntls_key = "{config}"\n', "not a PEM file"),
])
def test_tls_misconfiguration_is_one_line(tmp_path, pki, collector_proc_factory, toml, words):
    config = tmp_path / "collector.toml"
    config.write_text(toml.format(cert=pki.server_cert, ca=pki.ca_cert, config=config))
    done = collector_proc_factory(config_path=config).cli(
        "serve", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
    assert done.returncode == 1
    assert words in done.stderr and "Traceback" not in done.stderr
