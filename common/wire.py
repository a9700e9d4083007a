"""The names and numbers both ends of the wire must agree on beyond the
``.proto``: call metadata keys and keepalive. The agent and the collector import
them from here, so they cannot drift apart (each used to keep its own copy).

Keepalive: the collector pings an idle connection every 60 s (20 s to answer)
so that dead agents free their streams, and tolerates client pings no more
often than every 30 s; a client pinging faster gets GOAWAY ``too_many_pings``
after two strikes. The agent pings every 60 s when the connection is quiet:
that keeps NAT/firewall state alive and notices a dead collector within ~80 s,
and a busy stream pays nothing for it.
"""

from __future__ import annotations

# -- call metadata -------------------------------------------------------------------------
AUTHORIZATION_KEY = "authorization"               # "Bearer <credential>" on every agent call
REJECTED_SEQUENCE_KEY = "worklens-rejected-sequence"  # trailing: the batch refused for good
RETRY_AFTER_KEY = "retry-after-ms"                # trailing: when to resend after back-pressure

# -- keepalive -----------------------------------------------------------------------------
KEEPALIVE_TIME_MS = 60_000             # both sides ping a quiet connection this often
KEEPALIVE_TIMEOUT_MS = 20_000          # ... and drop it if no answer within this
MIN_CLIENT_PING_INTERVAL_MS = 30_000   # the collector tolerates client pings this often
MAX_PING_STRIKES = 2                   # faster pings tolerated before GOAWAY

# The channel options of an agent (the collector's server options allow them).
AGENT_KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)


def bearer(credential: str) -> tuple[str, str]:
    """The metadata pair that authenticates one call."""
    return (AUTHORIZATION_KEY, f"Bearer {credential}")


def credential_of(metadata: object) -> str:
    """The bearer credential in call metadata, or "" when there is none."""
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key == AUTHORIZATION_KEY and isinstance(value, str):
            scheme, _, credential = value.partition(" ")
            if scheme.lower() == "bearer":
                return credential.strip()
    return ""
