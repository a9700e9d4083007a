"""How the agent reaches the collector: one function that turns the
``[collector]`` settings into a gRPC channel, and one that turns a failed call
into a sentence a person can act on.

Security by default: TLS with a pinned CA (``ca_cert``), mutual TLS when
``client_cert``/``client_key`` are set, and plain text only to this machine
(loopback) unless the configuration says ``insecure = true``. The credential
rides as ``authorization: Bearer <credential>`` call metadata, added by an
interceptor so that no caller can forget it. Retry and backoff are not here:
the shipper owns them (see agent/shipper.py).

``[collector] address`` may name several collectors, comma-separated, the
preferred first. A channel always goes to ONE of them (``each_address``);
which one, and when to move to another, is the shipper's policy
(agent/failover.py). A single name with several DNS records is left to gRPC:
its resolver returns every record and its default ``pick_first`` policy tries
them in order on each connection attempt.
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import grpc
from worklens.agent.config import collector_addresses
from worklens.agent.credential import Connection
from worklens.common import wire
from worklens.common.addresses import is_loopback
from worklens.common.cli import UserError

ENROLL_HINT = "`worklens-agent enroll --collector HOST:PORT --secret SECRET`"


def connection(collector_section, saved: Connection | None = None) -> Connection:
    """The settings to use: the config's ``[collector]`` values where given,
    else the ones saved at enrollment."""
    saved = saved or Connection()

    def path(value, fallback: str) -> str:
        return str(Path(value).expanduser().resolve()) if value else fallback

    return Connection(
        address=collector_section.address or saved.address,
        ca_cert=path(collector_section.ca_cert, saved.ca_cert),
        client_cert=path(collector_section.client_cert, saved.client_cert),
        client_key=path(collector_section.client_key, saved.client_key),
        insecure=bool(collector_section.insecure or saved.insecure),
    )


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"collector address {address!r}: expected HOST:PORT, "
                        f"e.g. collector.example.com:50051")
    return host, int(port)


def each_address(conn: Connection) -> list[Connection]:
    """One Connection per configured address, in order of preference (the same
    TLS settings for all)."""
    try:
        addresses = collector_addresses(conn.address)
    except ValueError as exc:
        raise UserError(f"collector address {conn.address!r}: {exc}; expected HOST:PORT or "
                        f"several separated by commas") from None
    return [dataclasses.replace(conn, address=address) for address in addresses]


def check(conn: Connection) -> None:
    """Fail now, in one line, on what would fail every connection later: no or a
    bad address, plain text to a machine that is not this one, unreadable TLS files."""
    if not conn.address:
        open_channel(conn)      # says how to configure one
    for one in each_address(conn):
        open_channel(one).close()


# The agent's per-stream receive window (acks are a few bytes each).
RECEIVE_WINDOW_BYTES = 16 * 1024


def channel_options() -> list[tuple[str, int]]:
    return [
        *wire.AGENT_KEEPALIVE_OPTIONS,   # what the collector tolerates (worklens.common.wire)
        # each channel reconnects on its own schedule: the shipper's backoff, not a
        # process-wide subchannel pool, decides when to try again
        ("grpc.use_local_subchannel_pool", 1),
        # bandwidth-delay probing pings tune the window for bulk downloads; the agent
        # only receives small acks, so they would be pure overhead on every batch
        ("grpc.http2.bdp_probe", 0),
        # the agent only receives acks of a few bytes: with a small stream window
        # grpc-core tops up the connection window only now and then, not next to
        # every ack's stream WINDOW_UPDATE (13 bytes a batch; benchmarks/wire_bytes.py)
        ("grpc.http2.lookahead_bytes", RECEIVE_WINDOW_BYTES),
    ]


def open_channel(conn: Connection, credential: str | None = None) -> grpc.Channel:
    """A gzip-compressing channel to the collector, TLS unless it is local.
    ``conn`` names one address (see ``each_address`` for several)."""
    if not conn.address:
        raise UserError(f"no collector address: enroll first with {ENROLL_HINT}, "
                        f"or set [collector] address")
    if "," in conn.address:
        raise ValueError(f"open_channel takes one address, not {conn.address!r}")
    host, _ = split_address(conn.address)
    options = channel_options()
    if conn.ca_cert or conn.client_cert:
        channel = grpc.secure_channel(conn.address, _tls_credentials(conn), options,
                                      compression=grpc.Compression.Gzip)
    elif is_loopback(host) or conn.insecure:
        channel = grpc.insecure_channel(conn.address, options, compression=grpc.Compression.Gzip)
    else:
        raise UserError(f"refusing plain text to {conn.address} (not this machine): set "
                        f"[collector] ca_cert to the CA that signed the collector's certificate, "
                        f"or insecure = true to send in the clear")
    if credential:
        channel = grpc.intercept_channel(channel, _BearerAuth(credential))
    return channel


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _tls_credentials(conn: Connection) -> grpc.ChannelCredentials:
    if bool(conn.client_cert) != bool(conn.client_key):
        raise UserError("mutual TLS needs both [collector] client_cert and client_key")
    root = _read(conn.ca_cert, "ca_cert") if conn.ca_cert else None
    key = _read(conn.client_key, "client_key") if conn.client_key else None
    chain = _read(conn.client_cert, "client_cert") if conn.client_cert else None
    return grpc.ssl_channel_credentials(root_certificates=root, private_key=key,
                                        certificate_chain=chain)


class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                         "compression")), grpc.ClientCallDetails):
    pass


class _BearerAuth(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <credential>`` to every call."""

    def __init__(self, credential: str):
        self._header = wire.bearer(credential)

    def _details(self, details: grpc.ClientCallDetails) -> _CallDetails:
        metadata = [*(details.metadata or ()), self._header]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


def explain(err: grpc.RpcError, conn: Connection) -> str:
    """One sentence for a failed call: what went wrong and what to do."""
    code = err.code() if hasattr(err, "code") else None
    details = (err.details() if hasattr(err, "details") else "") or ""
    low = details.lower()
    where = f"collector at {conn.address}"
    if code == grpc.StatusCode.UNAVAILABLE:
        return _unreachable(low, details, conn, where)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer from the {where} in time"
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return (f"the {where} rejected this agent's credential ({details}): re-enroll with "
                f"{ENROLL_HINT}")
    name = code.name if code is not None else "error"
    return f"the {where} answered {name}: {details}"


def _unreachable(low: str, details: str, conn: Connection, where: str) -> str:
    """UNAVAILABLE covers everything from "not running" to a TLS mismatch; the
    transport's detail text is the only clue, so read it."""
    tls = bool(conn.ca_cert or conn.client_cert)
    if "certificate_verify_failed" in low or "certificate verify failed" in low:
        return (f"TLS handshake with the {where} failed: its certificate is not signed by "
                f"the CA in ca_cert ({conn.ca_cert or 'system roots'}) or does not name "
                f"{split_address(conn.address)[0]}")
    if "wrong_version_number" in low or "wrong version number" in low:
        return f"the {where} does not speak TLS: remove ca_cert, or enable TLS on the collector"
    if "socket closed" in low or "connection reset" in low:
        # with TLS 1.3 a server that wants a client certificate hangs up after the
        # handshake; a TLS server hangs up on plain text the same way
        if tls and not conn.client_cert:
            return (f"the {where} closed the connection after the TLS handshake: it requires "
                    f"a client certificate (mutual TLS); set [collector] client_cert and "
                    f"client_key")
        if tls:
            return (f"the {where} closed the connection after the TLS handshake: it did not "
                    f"accept the client certificate {conn.client_cert}")
        return (f"the {where} closed the connection: if it uses TLS, set [collector] ca_cert "
                f"to the CA that signed its certificate")
    if "handshake" in low or "ssl" in low or "tls" in low:
        return f"TLS handshake with the {where} failed: {details}"
    if "connection refused" in low:
        return f"cannot reach the {where}: nothing answers there (is it running?)"
    return f"cannot reach the {where}: {details}"
